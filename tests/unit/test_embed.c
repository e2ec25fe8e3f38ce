/* The C embedding API end to end, without the network: a DNS server that
 * is not there (loopback port 9, nothing listens) and invalid input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mxprobe.h"

static int failures, checks;

#define EXPECT(cond, ...) do { \
    checks++; \
    if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

int main(void)
{
    mxprobe *h = mxprobe_new();
    EXPECT(h != NULL, "mxprobe_new returned NULL");
    if (!h) return 1;

    EXPECT(mxprobe_set_option(h, "no-such-option", "x") == -1, "unknown option accepted");
    EXPECT(strstr(mxprobe_error(h), "no-such-option") != NULL, "error does not name the option: %s", mxprobe_error(h));
    EXPECT(mxprobe_set_option(h, "port", "70000") == -1, "port 70000 accepted");
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
    mxprobe_free(h);

    printf("test_embed: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
