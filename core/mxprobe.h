/*
 * mxprobe.h - embed mxprobe in a C program.
 *
 *   mxprobe *h = mxprobe_new();
 *   mxprobe_set_option(h, "resolver", "192.0.2.53");   // optional
 *   if (mxprobe_load_policy(h, "site.lua") != 0) fprintf(stderr, "%s\n", mxprobe_error(h));
 *   char *json = mxprobe_check_domain(h, "example.org"); // schema: docs/json-schema.md
 *   ...
 *   mxprobe_free_string(json);
 *   mxprobe_free(h);
 *
 * A handle is not thread-safe; use one per thread.  Every call blocks until
 * done (the event loop runs inside it).  Link with -lmxprobe.
 */
#ifndef MXPROBE_H
#define MXPROBE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mxprobe mxprobe;

/* A new handle with the default policy, or NULL (out of memory, or the Lua
 * sources cannot be found: set MXPROBE_HOME). */
mxprobe *mxprobe_new(void);

/* Set a probe option before the first check: "resolver" (ip[:port], may be
 * repeated), "helo" (host name or address literal), "port" (1-65535),
 * "ca_file" (a PEM bundle; loaded once here), "allow_reserved" (a kind, or
 * "all"), "relay" ("on" or "off"), "timeout_connect", "timeout_greeting",
 * "timeout_command", "timeout_tls", "timeout_dns" (seconds, more than 0
 * and at most 86400).  Values are checked as the command line checks
 * them: control characters (CR, LF, ...) are refused everywhere.
 * 0 on success, -1 for an unknown option or a bad value, with the reason
 * in mxprobe_error ("helo: 'x y' is not a host name or address literal").
 *
 * The library never changes the process's signal dispositions: while a
 * call runs, SIGPIPE is blocked in the calling thread (and a SIGPIPE our
 * own writes raised is discarded before the call returns). */
int mxprobe_set_option(mxprobe *h, const char *name, const char *value);

/* Load a Lua policy file (docs/policies.md).  0, or -1 with the reason in
 * mxprobe_error (file, line and field). */
int mxprobe_load_policy(mxprobe *h, const char *path);

/* Check a domain; returns the result as a JSON document (malloc'd; free
 * it with mxprobe_free_string), or NULL with mxprobe_error set. */
char *mxprobe_check_domain(mxprobe *h, const char *domain);

/* The last error message of this handle ("" if none). */
const char *mxprobe_error(const mxprobe *h);

void mxprobe_free_string(char *s);
void mxprobe_free(mxprobe *h);

#ifdef __cplusplus
}
#endif
#endif
