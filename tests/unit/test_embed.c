/* The C embedding API end to end, without the network: a DNS server that
 * is not there (loopback port 9, nothing listens) and invalid input. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mxprobe.h"

static int failures, checks;

#define EXPECT(cond, ...) do { \
    checks++; \
    if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

static void host_pipe_handler(int sig) { (void)sig; }

static int pipe_handler_is_ours(void)
{
    struct sigaction now;
    sigaction(SIGPIPE, NULL, &now);
    return now.sa_handler == host_pipe_handler;
}

/* set_option(name, value) must fail with a message containing want */
static void refused(mxprobe *h, const char *name, const char *value, const char *want)
{
    int r = mxprobe_set_option(h, name, value);
    EXPECT(r == -1, "%s=%s accepted", name, value ? value : "(null)");
    EXPECT(r != -1 || strstr(mxprobe_error(h), want) != NULL, "%s=%s: error '%s' lacks '%s'", name,
           value ? value : "(null)", mxprobe_error(h), want);
}

int main(void)
{
    /* the host's own SIGPIPE handler: the library must leave it alone
     * (it used to set SIG_IGN for the whole process in mxprobe_new) */
    struct sigaction sa = {0};
    sa.sa_handler = host_pipe_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);

    mxprobe *h = mxprobe_new();
    EXPECT(pipe_handler_is_ours(), "mxprobe_new changed the SIGPIPE disposition");
    EXPECT(h != NULL, "mxprobe_new returned NULL");
    if (!h) return 1;

    EXPECT(mxprobe_set_option(h, "no-such-option", "x") == -1, "unknown option accepted");
    EXPECT(strstr(mxprobe_error(h), "no-such-option") != NULL, "error does not name the option: %s", mxprobe_error(h));
    EXPECT(mxprobe_set_option(h, "port", "70000") == -1, "port 70000 accepted");

    /* values are checked as the command line checks them */
    refused(h, "helo", "mx.example\r\nRSET", "control characters");
    refused(h, "helo", "mx.example\n", "control characters");
    refused(h, "helo", "bad name!", "not a host name");
    refused(h, "helo", NULL, "a value is needed");
    EXPECT(mxprobe_set_option(h, "helo", "probe.example") == 0, "helo: %s", mxprobe_error(h));
    EXPECT(mxprobe_set_option(h, "helo", "[192.0.2.1]") == 0, "helo literal: %s", mxprobe_error(h));
    const char *bad_timeouts[] = {"inf", "nan", "1e999", "0", "-1", "86401", "1e3", "0x10", "", " 5", NULL};
    for (int i = 0; bad_timeouts[i]; i++) refused(h, "timeout_connect", bad_timeouts[i], "timeout_connect: ");
    EXPECT(mxprobe_set_option(h, "timeout_connect", "2.5") == 0, "timeout_connect: %s", mxprobe_error(h));
    refused(h, "timeout_tls", "86401", "at most 86400");
    refused(h, "resolver", "resolver.example", "not IP[:PORT]");
    refused(h, "resolver", "127.0.0.1:0", "port");
    refused(h, "port", "25\r\n", "control characters");
    refused(h, "port", "2.5", "not a port number");
    refused(h, "allow_reserved", "bogus", "not one of all");
    refused(h, "relay", "maybe", "\"on\" or \"off\"");
    refused(h, "helo\r\nX", "x", "unknown option");

    /* a CA file that is readable but holds no certificate */
    char ca[] = "/tmp/test_embed_ca_XXXXXX";
    int fd = mkstemp(ca);
    EXPECT(fd >= 0, "mkstemp");
    if (fd >= 0) {
        if (write(fd, "not a certificate\n", 18) != 18) perror("write");
        close(fd);
        refused(h, "ca_file", ca, "no certificate found");
        EXPECT(strstr(mxprobe_error(h), ca) != NULL, "error does not name the file: %s", mxprobe_error(h));
        unlink(ca);
    }
    refused(h, "ca_file", "/nonexistent/ca.pem", "/nonexistent/ca.pem: cannot read");
    EXPECT(mxprobe_set_option(h, "resolver", "127.0.0.1:9") == 0, "resolver: %s", mxprobe_error(h));
    EXPECT(mxprobe_set_option(h, "timeout_dns", "1") == 0, "timeout_dns: %s", mxprobe_error(h));

    EXPECT(mxprobe_load_policy(h, "/nonexistent/policy.lua") == -1, "missing policy file accepted");
    EXPECT(strstr(mxprobe_error(h), "/nonexistent/policy.lua") != NULL, "error does not name the file: %s", mxprobe_error(h));

    char *json = mxprobe_check_domain(h, "bad..name");
    EXPECT(json != NULL, "check_domain(bad..name): %s", mxprobe_error(h));
    if (json) {
        EXPECT(strstr(json, "\"DOMAIN_INVALID\"") != NULL, "no DOMAIN_INVALID in %s", json);
        EXPECT(strstr(json, "\"schema\":1") != NULL, "no schema field in %s", json);
        mxprobe_free_string(json);
    }

    json = mxprobe_check_domain(h, "example.test");
    EXPECT(json != NULL, "check_domain(example.test): %s", mxprobe_error(h));
    if (json) {
        EXPECT(strstr(json, "\"MX_DNS_FAIL\"") != NULL, "no MX_DNS_FAIL in %s", json);
        EXPECT(strstr(json, "\"inconclusive\"") != NULL, "verdict is not inconclusive in %s", json);
        mxprobe_free_string(json);
    }
    EXPECT(pipe_handler_is_ours(), "a check changed the SIGPIPE disposition");
    mxprobe_free(h);
    EXPECT(pipe_handler_is_ours(), "mxprobe_free changed the SIGPIPE disposition");
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    EXPECT(!sigismember(&mask, SIGPIPE), "SIGPIPE left blocked in the calling thread");

    printf("test_embed: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
