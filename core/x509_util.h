/*
 * x509_util.h - what l_tls.c needs from l_x509.c: turning an OpenSSL X509
 * into the Lua x509 object (metatable MX_X509_MT).
 */
#ifndef MX_X509_UTIL_H
#define MX_X509_UTIL_H

#include <lua.h>
#include <openssl/x509.h>

#define MX_X509_MT "mxprobe.x509"

/* [-0, +1, m] push x as a Lua x509 object.  Takes its own reference
 * (X509_up_ref), so the caller keeps ownership of x. */
void mx_x509_push(lua_State *L, X509 *x);

/* [-0, +0, v] the X509 of the x509 object at idx; raises a type error
 * naming the argument otherwise. */
X509 *mx_x509_check(lua_State *L, int idx);

/* X509_check_host with RFC 6125 wildcard rules, or X509_check_ip_asc for
 * a numeric address; one trailing dot is ignored.
 * Returns 1 match, 0 no match, -1 malformed name. */
int mx_x509_match_host(X509 *x, const char *name, size_t len);

/* Append OpenSSL's error queue as "reason; reason" to buf (and clear the
 * queue); "unknown error" when it is empty.  Returns buf. */
char *mx_ssl_errors(char *buf, size_t len);

#endif
