/* test_smtp_reply.c - the SMTP reply parser (core/smtp_reply.c). */
#include "smtp_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: %s: FAILED %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                        \
    } while (0)

/* Parse all of buf in one call. */
static int parse_all(const char *buf, size_t len, const mx_smtp_limits *lim, mx_smtp_parser *p)
{
    mx_smtp_parser_init(p, lim);
    return mx_smtp_parse(p, buf, len);
}

/* Feed buf one byte at a time (the buffer grows by appending, as a socket's
 * does); returns the first non-MORE result, or MORE. */
static int parse_bytewise(const char *buf, size_t len, const mx_smtp_limits *lim, mx_smtp_parser *p)
{
    mx_smtp_parser_init(p, lim);
    int r = MX_REPLY_MORE;
    for (size_t i = 1; i <= len && r == MX_REPLY_MORE; i++) r = mx_smtp_parse(p, buf, i);
    return r;
}

static void lines_equal(const char *buf, size_t consumed, const char **want, size_t nwant)
{
    size_t off = 0, tl, i = 0;
    const char *t;
    while (mx_smtp_next_line(buf, consumed, &off, &t, &tl)) {
        CHECK(i < nwant);
        if (i < nwant) CHECK(tl == strlen(want[i]) && memcmp(t, want[i], tl) == 0);
        i++;
    }
    CHECK(i == nwant);
}

static void test_multiline(void)
{
    const char *r = "250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\nNEXT";
    mx_smtp_parser p;
    CHECK(parse_all(r, strlen(r), NULL, &p) == MX_REPLY_DONE);
    CHECK(p.code == 250);
    CHECK(p.nlines == 3);
    CHECK(p.consumed == strlen(r) - 4); /* stops before the next reply */
    const char *want[] = {"mx.example.org", "PIPELINING", "SIZE 1000"};
    lines_equal(r, p.consumed, want, 3);
    /* byte by byte gives the same answer */
    CHECK(parse_bytewise(r, strlen(r), NULL, &p) == MX_REPLY_DONE);
    CHECK(p.consumed == strlen(r) - 4 && p.nlines == 3 && p.code == 250);
}

static void test_bare_and_lf(void)
{
    mx_smtp_parser p;
    CHECK(parse_all("250\r\n", 5, NULL, &p) == MX_REPLY_DONE);
    CHECK(p.code == 250 && p.nlines == 1 && p.consumed == 5);
    const char *empty[] = {""};
    lines_equal("250\r\n", 5, empty, 1);
    CHECK(parse_all("354\n", 4, NULL, &p) == MX_REPLY_DONE && p.consumed == 4);
    const char *lf = "220-a\n220-\n220 c\n";
    CHECK(parse_all(lf, strlen(lf), NULL, &p) == MX_REPLY_DONE && p.nlines == 3);
    const char *want[] = {"a", "", "c"};
    lines_equal(lf, p.consumed, want, 3);
    /* "250 " with an empty text, and a CR inside a line is text */
    CHECK(parse_all("250 \r\n", 6, NULL, &p) == MX_REPLY_DONE);
    const char *cr = "250 a\rb\r\n";
    CHECK(parse_all(cr, strlen(cr), NULL, &p) == MX_REPLY_DONE);
    const char *want_cr[] = {"a\rb"};
    lines_equal(cr, p.consumed, want_cr, 1);
}

static void test_need_more(void)
{
    mx_smtp_parser p;
    CHECK(parse_all("", 0, NULL, &p) == MX_REPLY_MORE);
    CHECK(parse_all("25", 2, NULL, &p) == MX_REPLY_MORE);
    CHECK(parse_all("250-a\r\n", 7, NULL, &p) == MX_REPLY_MORE);
    CHECK(parse_all("250 a\r", 6, NULL, &p) == MX_REPLY_MORE);
    /* a final answer sticks */
    CHECK(parse_all("250 a\r\n", 7, NULL, &p) == MX_REPLY_DONE);
    CHECK(mx_smtp_parse(&p, "250 a\r\n250 b\r\n", 14) == MX_REPLY_DONE && p.consumed == 7);
}

static void test_enhanced(void)
{
    char out[16];
    CHECK(mx_smtp_enhanced("2.0.0 ok", 8, 250, out) == 5 && strcmp(out, "2.0.0") == 0);
    CHECK(mx_smtp_enhanced("5.7.1", 5, 554, out) == 5 && strcmp(out, "5.7.1") == 0);
    CHECK(mx_smtp_enhanced("4.123.456 x", 11, 451, out) == 9 && strcmp(out, "4.123.456") == 0);
    CHECK(mx_smtp_enhanced("5.1.1 x", 7, 250, out) == 0);     /* class differs from the code */
    CHECK(mx_smtp_enhanced("3.0.0 x", 7, 354, out) == 0);     /* no class 3 */
    CHECK(mx_smtp_enhanced("2.1000.0 x", 10, 250, out) == 0); /* 4 digits */
    CHECK(mx_smtp_enhanced("2.0.0x", 6, 250, out) == 0);
    CHECK(mx_smtp_enhanced("2.0 x", 5, 250, out) == 0);
    CHECK(mx_smtp_enhanced("2..0", 4, 250, out) == 0);
    CHECK(mx_smtp_enhanced("hello", 5, 250, out) == 0);
    CHECK(mx_smtp_enhanced("", 0, 250, out) == 0);
}

static void test_malformed(void)
{
    mx_smtp_parser p;
    const char *bad[] = {"hello\r\n", "25\r\n", "2x0 a\r\n", "250x\r\n", "\r\n", "250_a\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(parse_all(bad[i], strlen(bad[i]), NULL, &p) == MX_REPLY_ERROR);
        CHECK(p.err == MX_REPLY_MALFORMED);
    }
    const char *mm = "250-a\r\n251 b\r\n";
    CHECK(parse_all(mm, strlen(mm), NULL, &p) == MX_REPLY_ERROR);
    CHECK(p.err == MX_REPLY_CODE_MISMATCH && p.nlines == 1);
    CHECK(parse_bytewise(mm, strlen(mm), NULL, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_CODE_MISMATCH);
    /* a malformed second line is caught too */
    CHECK(parse_all("250-a\r\nxyz\r\n", 12, NULL, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_MALFORMED);
    CHECK(strlen(mx_smtp_strerror(MX_REPLY_MALFORMED)) > 0);
}

static void test_line_too_long(void)
{
    mx_smtp_parser p;
    size_t n = 5000;
    char *b = malloc(n);
    memcpy(b, "250 ", 4);
    memset(b + 4, 'x', n - 4);
    /* detected before any LF arrives, and byte by byte */
    CHECK(parse_all(b, n, NULL, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_LINE_TOO_LONG);
    CHECK(parse_bytewise(b, n, NULL, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_LINE_TOO_LONG);
    /* exactly at the cap is fine: max_line counts the CRLF */
    mx_smtp_limits lim = {.max_line = 10};
    CHECK(parse_all("250 abcd\r\n", 10, &lim, &p) == MX_REPLY_DONE);
    CHECK(parse_all("250 abcde\r\n", 11, &lim, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_LINE_TOO_LONG);
    CHECK(parse_all("250 abcdefgh", 12, &lim, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_LINE_TOO_LONG);
    free(b);
}

static void test_too_many_lines(void)
{
    mx_smtp_parser p;
    char buf[2000];
    size_t n = 0;
    for (int i = 0; i < 150; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "250-x\r\n");
    CHECK(parse_all(buf, n, NULL, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_TOO_MANY_LINES);
    CHECK(p.nlines == 100);
    mx_smtp_limits lim = {.max_lines = 3};
    CHECK(parse_all("250-a\r\n250-b\r\n250 c\r\n", 21, &lim, &p) == MX_REPLY_DONE);
    CHECK(parse_all("250-a\r\n250-b\r\n250-c\r\n", 21, &lim, &p) == MX_REPLY_ERROR &&
          p.err == MX_REPLY_TOO_MANY_LINES);
    /* the error comes as soon as line 3 shows it is not the last */
    CHECK(parse_bytewise("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", 28, &lim, &p) == MX_REPLY_ERROR);
    CHECK(p.err == MX_REPLY_TOO_MANY_LINES);
}

static void test_too_many_bytes(void)
{
    mx_smtp_parser p;
    mx_smtp_limits lim = {.max_bytes = 20};
    const char *ok = "250-abcdef\r\n250 ab\r\n"; /* 20 bytes exactly */
    CHECK(parse_all(ok, 20, &lim, &p) == MX_REPLY_DONE && p.consumed == 20);
    const char *big = "250-abcdef\r\n250 abc\r\n";
    CHECK(parse_all(big, strlen(big), &lim, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_TOO_MANY_BYTES);
    CHECK(parse_bytewise(big, strlen(big), &lim, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_TOO_MANY_BYTES);
    /* the default: 64 KiB of 1000-byte lines, lines allowed */
    size_t n = 70000;
    char *b = malloc(n);
    size_t k = 0;
    while (k + 1000 <= n) {
        memcpy(b + k, "250-", 4);
        memset(b + k + 4, 'y', 994);
        memcpy(b + k + 998, "\r\n", 2);
        k += 1000;
    }
    mx_smtp_limits many = {.max_lines = 1000};
    CHECK(parse_all(b, k, &many, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_TOO_MANY_BYTES);
    free(b);
}

static void test_nul_bytes(void)
{
    mx_smtp_parser p;
    const char r[] = "250-a\0b\r\n250 \0\0\r\n";
    size_t n = sizeof r - 1;
    CHECK(parse_all(r, n, NULL, &p) == MX_REPLY_DONE && p.consumed == n && p.nlines == 2);
    size_t off = 0, tl;
    const char *t;
    CHECK(mx_smtp_next_line(r, p.consumed, &off, &t, &tl) && tl == 3 && memcmp(t, "a\0b", 3) == 0);
    CHECK(mx_smtp_next_line(r, p.consumed, &off, &t, &tl) && tl == 2 && t[0] == 0 && t[1] == 0);
    CHECK(!mx_smtp_next_line(r, p.consumed, &off, &t, &tl));
    /* a NUL in the code is malformed, not a crash */
    CHECK(parse_all("2\0" "0 x\r\n", 7, NULL, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_MALFORMED);
}

/* Every split of a reply into two feeds gives the same result as one feed. */
static void test_all_splits(void)
{
    const char *r = "220-mx.lab.test ESMTP\r\n220-\r\n220 2.0.0 ready\n";
    size_t n = strlen(r);
    for (size_t cut = 0; cut <= n; cut++) {
        mx_smtp_parser p;
        mx_smtp_parser_init(&p, NULL);
        int a = mx_smtp_parse(&p, r, cut);
        CHECK(cut == n ? a == MX_REPLY_DONE : a == MX_REPLY_MORE);
        CHECK(mx_smtp_parse(&p, r, n) == MX_REPLY_DONE && p.consumed == n && p.nlines == 3 && p.code == 220);
    }
}

/* A socket-like buffer: bytes arrive in chunks, the parser's cuts are
 * applied as l_smtp.c applies them.  Returns the final result. */
static int feed_with_cuts(const char *in, size_t n, size_t chunk, const mx_smtp_limits *lim, mx_smtp_parser *p,
                          char *buf, size_t *len)
{
    mx_smtp_parser_init(p, lim);
    size_t fed = 0;
    int r = MX_REPLY_MORE;
    *len = 0;
    while (r == MX_REPLY_MORE || r == MX_REPLY_CUT) {
        if (r == MX_REPLY_MORE) {
            if (fed == n) break;
            size_t k = n - fed < chunk ? n - fed : chunk;
            memcpy(buf + *len, in + fed, k);
            *len += k, fed += k;
        } else {
            memmove(buf + p->cut_off, buf + p->cut_off + p->cut_len, *len - p->cut_off - p->cut_len);
            *len -= p->cut_len;
        }
        r = mx_smtp_parse(p, buf, *len);
    }
    return r;
}

/* An overlong line with discard_max: its head is kept, its tail cut out
 * of the buffer as it arrives (never held whole), its real length known,
 * and the lines after it parse as usual. */
static void test_overlong_cut(void)
{
    size_t longlen = 100000;
    size_t n = 4 + longlen + 2 + strlen("220 second line\r\n") + 4;
    char *in = malloc(n + 1), *buf = malloc(n + 1);
    strcpy(in, "220-");
    memset(in + 4, 'x', longlen);
    strcpy(in + 4 + longlen, "\r\n220 second line\r\nNEXT");
    n = strlen(in);
    mx_smtp_limits lim = {.max_line = 512, .discard_max = 1 << 20};
    mx_smtp_parser p;
    size_t len;
    for (size_t chunk = 1; chunk <= 8192; chunk *= 8) {
        int r = feed_with_cuts(in, n, chunk, &lim, &p, buf, &len);
        CHECK(r == MX_REPLY_DONE);
        CHECK(p.code == 220 && p.nlines == 2);
        CHECK(p.longest == 4 + longlen + 2 && p.longest_line == 1);
        CHECK(p.cut_total == 4 + longlen + 1 - 511); /* everything after the head, CR included, up to the LF */
        /* what follows the reply is untouched (fed up to the chunk boundary) */
        CHECK(len >= p.consumed && len <= p.consumed + 4 && memcmp(buf + p.consumed, "NEXT", len - p.consumed) == 0);
        size_t off = 0, tl;
        const char *t;
        CHECK(mx_smtp_next_line(buf, p.consumed, &off, &t, &tl) && tl == 511 - 4 && t[0] == 'x');
        CHECK(mx_smtp_next_line(buf, p.consumed, &off, &t, &tl) && tl == strlen("second line"));
    }
    /* past the discard cap it is still an error, without holding the line */
    mx_smtp_limits small = {.max_line = 512, .discard_max = 1000};
    CHECK(feed_with_cuts(in, n, 4096, &small, &p, buf, &len) == MX_REPLY_ERROR);
    CHECK(p.err == MX_REPLY_LINE_TOO_LONG && len <= 4096 + 512);
    /* garbage is refused at once, not discarded up to the cap */
    memset(in, 'z', 2000);
    CHECK(feed_with_cuts(in, 2000, 2000, &lim, &p, buf, &len) == MX_REPLY_ERROR);
    CHECK(p.err == MX_REPLY_LINE_TOO_LONG && p.cut_total == 0);
    /* without discard_max nothing changes: an overlong line is an error */
    mx_smtp_limits strict = {.max_line = 512};
    CHECK(parse_all("220 ok\r\n", 8, &strict, &p) == MX_REPLY_DONE && p.longest == 8 && p.longest_line == 1);
    memset(in, 'y', 600);
    memcpy(in, "220 ", 4);
    CHECK(parse_all(in, 600, &strict, &p) == MX_REPLY_ERROR && p.err == MX_REPLY_LINE_TOO_LONG);
    free(in);
    free(buf);
}

int main(void)
{
    test_overlong_cut();
    test_multiline();
    test_bare_and_lf();
    test_need_more();
    test_enhanced();
    test_malformed();
    test_line_too_long();
    test_too_many_lines();
    test_too_many_bytes();
    test_nul_bytes();
    test_all_splits();
    printf("test_smtp_reply: %d checks, %d passed, %d failed\n", checks, checks - failures, failures);
    return failures ? 1 : 0;
}
