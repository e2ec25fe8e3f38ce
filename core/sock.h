/*
 * sock.h - the TCP connection object shared by the net, smtp and tls
 * bindings (Lua userdata, metatable MX_SOCK_MT).
 *
 * All reads and writes go through io_read/io_write so that after STARTTLS
 * the same object speaks TLS: l_tls.c swaps in its own functions and owns
 * `tls`.  The input buffer `in` holds bytes received but not yet consumed;
 * it is what lets us detect plaintext injected after the STARTTLS 220.
 */
#ifndef MX_SOCK_H
#define MX_SOCK_H

#include <stddef.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <lua.h>
#include "buf.h"

#define MX_SOCK_MT "mxprobe.sock"

enum { MX_SOCK_NEW = 0, MX_SOCK_CONNECTING, MX_SOCK_OPEN, MX_SOCK_LISTENING, MX_SOCK_CLOSED };

/* io results: > 0 bytes moved, 0 = orderly EOF (reads only),
 * MX_IO_AGAIN = would block (*want says MX_READ/MX_WRITE),
 * MX_IO_ERROR = failed (the socket's err/err_code say why). */
enum { MX_IO_AGAIN = -1, MX_IO_ERROR = -2 };

typedef struct mx_sock mx_sock;
struct mx_sock {
    int fd;
    int state;
    int family;
    mx_buf in;
    long (*io_read)(mx_sock *s, void *p, size_t n, unsigned *want);
    long (*io_write)(mx_sock *s, const void *p, size_t n, unsigned *want);
    void (*io_free)(mx_sock *s);     /* frees `tls`; NULL for plain */
    void *tls;                       /* SSL *, owned by l_tls.c */
    const char *err_code;            /* "reset", "closed", "tls", ... */
    char err[160];                   /* human detail */
    struct sockaddr_storage peer, local;
    double t_created, t_connected;   /* monotonic seconds */
    size_t bytes_in, bytes_out;
};

/* [-0, +0, v] raises a type error naming the argument if not a socket */
mx_sock *mx_sock_check(lua_State *L, int idx);
/* Fill the input buffer with what one read brings.  Returns bytes read,
 * 0 on EOF, MX_IO_AGAIN (with *want) or MX_IO_ERROR; -3 when the buffer
 * cap is reached (nothing read). */
long mx_sock_fill(mx_sock *s, unsigned *want);
/* [-0, +1, m] wrap a connected non-blocking stream fd as an open socket
 * (harnesses; see l_net.c). */
mx_sock *mx_sock_push_fd(lua_State *L, int fd, int family);
/* Format an address as "ip" and port. */
void mx_sockaddr_str(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port);

#endif
