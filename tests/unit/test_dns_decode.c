/*
 * test_dns_decode.c - the DNS answer decoder on hand-built packets.
 * Exit status 0 when every check passes; failures are printed.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_decode.h"

static int failures, checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                                          \
    } while (0)
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        checks++;                                                                                  \
        if (strcmp((a), (b)) != 0) {                                                               \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, __func__, (a), (b)); \
        }                                                                                          \
    } while (0)
#define CHECK_HAS(hay, needle)                                                                     \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!strstr((hay), (needle))) {                                                            \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: %s: \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, __func__, (hay), (needle)); \
        }                                                                                          \
    } while (0)

/* ---- a tiny packet builder ---- */

typedef struct { uint8_t b[4096]; size_t n; } pkt;

static void u8(pkt *p, unsigned v) { p->b[p->n++] = (uint8_t)v; }
static void u16(pkt *p, unsigned v) { u8(p, v >> 8); u8(p, v & 0xFF); }
static void u32(pkt *p, uint32_t v) { u16(p, v >> 16); u16(p, v & 0xFFFF); }
static void bytes(pkt *p, const void *d, size_t n) { memcpy(p->b + p->n, d, n); p->n += n; }

/* "a.b.c" -> labels and the root; no compression */
static void name(pkt *p, const char *s)
{
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        u8(p, (unsigned)n);
        bytes(p, s, n);
        s += n;
        if (*s == '.') s++;
    }
    u8(p, 0);
}

static void ptr(pkt *p, unsigned off) { u16(p, 0xC000 | off); }

static void header(pkt *p, unsigned flags, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
    p->n = 0;
    u16(p, 0x1234);
    u16(p, flags);
    u16(p, qd);
    u16(p, an);
    u16(p, ns);
    u16(p, ar);
}

/* The question is always at offset 12, so ptr(p, 12) names it. */
static void question(pkt *p, const char *qname, unsigned qtype)
{
    name(p, qname);
    u16(p, qtype);
    u16(p, 1);
}

static void rr_head(pkt *p, unsigned type, uint32_t ttl, unsigned rdlength)
{
    u16(p, type);
    u16(p, 1);
    u32(p, ttl);
    u16(p, rdlength);
}

static int decode_all(pkt *p, mx_dns_parser *ps, mx_dns_rr *out, int max_out, unsigned cap)
{
    if (mx_dns_parse_begin(ps, p->b, p->n, cap) < 0) return -1;
    int n = 0, r;
    static mx_dns_rr scratch;
    while ((r = mx_dns_parse_next(ps, n < max_out ? &out[n] : &scratch)) > 0) n++;
    return r < 0 ? -1 : n;
}

#define FLAGS_RESPONSE 0x8180 /* QR, RD, RA */

static mx_dns_rr rrs[16];

static void test_good_mx(void)
{
    pkt p;
    mx_dns_parser ps;
    header(&p, FLAGS_RESPONSE | 0x0400 /* AA */, 1, 2, 1, 0);
    question(&p, "core.test", 15);
    /* answer 1: owner = pointer to the question, exchange fully written */
    ptr(&p, 12);
    size_t rdl = p.n + 8;
    rr_head(&p, 15, 300, 0);
    size_t start = p.n;
    u16(&p, 10);
    size_t mx1 = p.n;
    name(&p, "mx1.core.test");
    p.b[rdl] = 0;
    p.b[rdl + 1] = (uint8_t)(p.n - start);
    /* answer 2: exchange "mx2" + pointer to "core.test" in the question */
    ptr(&p, 12);
    rr_head(&p, 15, 600, 2 + 4 + 2);
    u16(&p, 20);
    u8(&p, 3);
    bytes(&p, "mx2", 3);
    ptr(&p, 12);
    /* authority: NS whose target points into the first exchange */
    ptr(&p, 12);
    rr_head(&p, 2, 3600, 2);
    ptr(&p, (unsigned)mx1);

    int n = decode_all(&p, &ps, rrs, 16, 100);
    CHECK(n == 3);
    if (n != 3) {
        fprintf(stderr, "  error: %s\n", ps.error);
        return;
    }
    CHECK(ps.qr && ps.aa && !ps.tc && ps.rd && ps.ra && !ps.ad);
    CHECK(ps.rcode == 0);
    CHECK_STR(ps.qname, "core.test");
    CHECK(ps.qtype == 15);
    CHECK(rrs[0].section == MX_DNS_SEC_ANSWER);
    CHECK_STR(rrs[0].name, "core.test");
    CHECK(rrs[0].type == 15 && rrs[0].ttl == 300 && rrs[0].preference == 10);
    CHECK_STR(rrs[0].host, "mx1.core.test");
    CHECK(rrs[1].preference == 20 && rrs[1].ttl == 600);
    CHECK_STR(rrs[1].host, "mx2.core.test");
    CHECK(rrs[2].section == MX_DNS_SEC_AUTHORITY && rrs[2].type == 2);
    CHECK_STR(rrs[2].host, "mx1.core.test");
    CHECK(!ps.capped);
}

static void test_pointer_loops(void)
{
    pkt p;
    mx_dns_parser ps;

    /* owner name is a pointer to itself */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "loop.test", 1);
    size_t self = p.n;
    ptr(&p, (unsigned)self);
    rr_head(&p, 1, 60, 4);
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "answer record 1");
    CHECK_HAS(ps.error, "loop");

    /* a label followed by a pointer back to that label: a backwards loop */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "loop.test", 1);
    size_t lab = p.n;
    u8(&p, 1);
    u8(&p, 'a');
    ptr(&p, (unsigned)lab);
    rr_head(&p, 1, 60, 4);
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "loop");

    /* two pointers to each other (the forward one is refused) */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "loop.test", 1);
    size_t a = p.n;
    ptr(&p, (unsigned)(a + 2));
    ptr(&p, (unsigned)a);
    rr_head(&p, 1, 60, 4);
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "loop");

    /* the loop in the question itself */
    header(&p, FLAGS_RESPONSE, 1, 0, 0, 0);
    ptr(&p, 12);
    u16(&p, 1);
    u16(&p, 1);
    CHECK(mx_dns_parse_begin(&ps, p.b, p.n, 100) == -1);
    CHECK_HAS(ps.error, "question");

    /* a long legitimate chain of backwards pointers is fine (the chain
     * sits in the rdata of a first record of a private type) */
    header(&p, FLAGS_RESPONSE, 1, 2, 0, 0);
    question(&p, "x", 1);
    ptr(&p, 12);
    rr_head(&p, 65280, 60, 20 * 4);
    size_t prev = 12; /* "x" */
    for (int i = 0; i < 20; i++) {
        size_t here = p.n;
        u8(&p, 1);
        u8(&p, 'a' + i);
        ptr(&p, (unsigned)prev);
        prev = here;
    }
    ptr(&p, (unsigned)prev);
    rr_head(&p, 1, 60, 4);
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == 2);
    CHECK_STR(rrs[1].name, "t.s.r.q.p.o.n.m.l.k.j.i.h.g.f.e.d.c.b.a.x");
    CHECK_STR(rrs[1].address, "192.0.2.1");
}

static void test_truncated(void)
{
    pkt p;
    mx_dns_parser ps;
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 1);
    ptr(&p, 12);
    u16(&p, 1);
    u16(&p, 1); /* TTL and rdlength missing */
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "truncated");

    /* ancount says 2, only one record present */
    header(&p, FLAGS_RESPONSE, 1, 2, 0, 0);
    question(&p, "core.test", 1);
    ptr(&p, 12);
    rr_head(&p, 1, 60, 4);
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "answer record 2");

    /* a label that runs off the end */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 1);
    u8(&p, 40);
    bytes(&p, "abc", 3);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "past the end");

    /* the TC bit, and an opcode other than QUERY */
    header(&p, 0x8000 | (2 << 11) | 0x0200 | 0x0010 /* CD */, 0, 0, 0, 0);
    CHECK(mx_dns_parse_begin(&ps, p.b, p.n, 10) == 0);
    CHECK(ps.tc && ps.opcode == 2 && ps.cd && !ps.aa && !ps.ad && !ps.has_question);
    CHECK(mx_dns_parse_next(&ps, &rrs[0]) == 0);

    /* shorter than a header; not a response */
    uint8_t tiny[5] = {0};
    CHECK(mx_dns_parse_begin(&ps, tiny, sizeof tiny, 10) == -1);
    CHECK_HAS(ps.error, "header");
    header(&p, 0x0100, 0, 0, 0, 0);
    CHECK(mx_dns_parse_begin(&ps, p.b, p.n, 10) == -1);
    CHECK_HAS(ps.error, "QR");
}

static void test_rdlength(void)
{
    pkt p;
    mx_dns_parser ps;
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 1);
    ptr(&p, 12);
    rr_head(&p, 1, 60, 200); /* past the end */
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "rdata runs past the end");

    /* A with 5 bytes */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 1);
    ptr(&p, 12);
    rr_head(&p, 1, 60, 5);
    u32(&p, 0xC0000201);
    u8(&p, 0);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "A rdata is 5 bytes");

    /* MX whose exchange runs past its rdlength (into the next bytes) */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 15);
    ptr(&p, 12);
    rr_head(&p, 15, 60, 4);
    u16(&p, 10);
    name(&p, "mx1.core.test");
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "MX exchange");

    /* CNAME with trailing bytes after the name */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 5);
    ptr(&p, 12);
    rr_head(&p, 5, 60, 4);
    ptr(&p, 12);
    u16(&p, 0);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "after the name");
}

static void test_txt_tlsa_soa_aaaa(void)
{
    pkt p;
    mx_dns_parser ps;
    header(&p, FLAGS_RESPONSE | 0x0020 /* AD */ | 0x0003 /* NXDOMAIN */, 1, 3, 1, 0);
    question(&p, "core.test", 16);
    ptr(&p, 12);
    rr_head(&p, 16, 60, 1 + 5 + 1 + 3 + 1);
    u8(&p, 5);
    bytes(&p, "hello", 5);
    u8(&p, 3);
    bytes(&p, "a b", 3);
    u8(&p, 0);
    ptr(&p, 12);
    rr_head(&p, 52, 60, 3 + 4);
    u8(&p, 3);
    u8(&p, 1);
    u8(&p, 1);
    u32(&p, 0xDEADBEEF);
    ptr(&p, 12);
    rr_head(&p, 28, 60, 16);
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
    bytes(&p, v6, 16);
    ptr(&p, 12);
    size_t rdl = p.n + 8;
    rr_head(&p, 6, 3600, 0);
    size_t start = p.n;
    name(&p, "ns.core.test");
    u8(&p, 10);
    bytes(&p, "host.ma\\il", 10); /* a literal backslash in a label */
    ptr(&p, 12);
    u32(&p, 2024010101);
    u32(&p, 3600);
    u32(&p, 600);
    u32(&p, 86400);
    u32(&p, 60);
    p.b[rdl + 1] = (uint8_t)(p.n - start);

    int n = decode_all(&p, &ps, rrs, 16, 100);
    CHECK(n == 4);
    if (n != 4) {
        fprintf(stderr, "  error: %s\n", ps.error);
        return;
    }
    CHECK(ps.ad && ps.rcode == 3);
    char rb[16];
    CHECK_STR(mx_dns_rcode_name(ps.rcode, rb, sizeof rb), "NXDOMAIN");
    CHECK(rrs[0].nstrings == 3);
    size_t off = 0, len;
    const uint8_t *s;
    CHECK(mx_dns_txt_next(&rrs[0], &off, &s, &len) == 1 && len == 5 && memcmp(s, "hello", 5) == 0);
    CHECK(mx_dns_txt_next(&rrs[0], &off, &s, &len) == 1 && len == 3 && memcmp(s, "a b", 3) == 0);
    CHECK(mx_dns_txt_next(&rrs[0], &off, &s, &len) == 1 && len == 0);
    CHECK(mx_dns_txt_next(&rrs[0], &off, &s, &len) == 0);
    CHECK(rrs[1].type == 52 && rrs[1].usage == 3 && rrs[1].selector == 1 && rrs[1].mtype == 1);
    CHECK(rrs[1].rdlength == 7 && rrs[1].rdata[3] == 0xDE);
    CHECK_STR(rrs[2].address, "2001:db8::10");
    CHECK(rrs[3].section == MX_DNS_SEC_AUTHORITY);
    CHECK_STR(rrs[3].host, "ns.core.test");
    CHECK_STR(rrs[3].host2, "host\\.ma\\\\il.core.test");
    CHECK(rrs[3].serial == 2024010101 && rrs[3].minimum == 60 && rrs[3].expire == 86400);

    /* a TXT string longer than its rdata */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 16);
    ptr(&p, 12);
    rr_head(&p, 16, 60, 3);
    u8(&p, 9);
    bytes(&p, "ab", 2);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "TXT string 1");

    /* SOA missing its counters */
    header(&p, FLAGS_RESPONSE, 1, 0, 1, 0);
    question(&p, "core.test", 6);
    ptr(&p, 12);
    rr_head(&p, 6, 60, 4 + 8);
    ptr(&p, 12);
    ptr(&p, 12);
    u32(&p, 1);
    u32(&p, 2);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "authority record 1");
    CHECK_HAS(ps.error, "SOA");
}

static void test_escapes_and_limits(void)
{
    pkt p;
    mx_dns_parser ps;
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 1);
    u8(&p, 4);
    u8(&p, 'a');
    u8(&p, '.');
    u8(&p, 1);
    u8(&p, ' ');
    ptr(&p, 12);
    rr_head(&p, 1, 0x80000000u, 4); /* TTL with the top bit set reads as 0 */
    u32(&p, 0xC0000202);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == 1);
    CHECK_STR(rrs[0].name, "a\\.\\001\\032.core.test");
    CHECK(rrs[0].ttl == 0);

    /* the root name */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "core.test", 15);
    ptr(&p, 12);
    rr_head(&p, 15, 60, 3);
    u16(&p, 0);
    u8(&p, 0);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == 1);
    CHECK_STR(rrs[0].host, ".");
    CHECK(rrs[0].preference == 0);

    /* longer than 255 octets through pointers: 5 x 63-octet labels */
    header(&p, FLAGS_RESPONSE, 1, 2, 0, 0);
    question(&p, "x", 1);
    ptr(&p, 12);
    rr_head(&p, 65280, 60, 5 * 66);
    size_t prev = 12;
    char lab[63];
    memset(lab, 'z', sizeof lab);
    for (int i = 0; i < 5; i++) {
        size_t here = p.n;
        u8(&p, 63);
        bytes(&p, lab, 63);
        ptr(&p, (unsigned)prev);
        prev = here;
    }
    ptr(&p, (unsigned)prev);
    rr_head(&p, 1, 60, 4);
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "answer record 2");
    CHECK_HAS(ps.error, "255");

    /* reserved label type 0x40 */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "x", 1);
    u8(&p, 0x41);
    u8(&p, 0);
    rr_head(&p, 1, 60, 4);
    u32(&p, 0xC0000201);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == -1);
    CHECK_HAS(ps.error, "reserved label");

    /* the record cap: 10 records, cap 3 */
    header(&p, FLAGS_RESPONSE, 1, 10, 0, 0);
    question(&p, "big", 1);
    for (int i = 0; i < 10; i++) {
        ptr(&p, 12);
        rr_head(&p, 1, 60, 4);
        u32(&p, 0xC0000200u + (unsigned)i);
    }
    CHECK(decode_all(&p, &ps, rrs, 16, 3) == 3);
    CHECK(ps.capped);
    CHECK_STR(rrs[2].address, "192.0.2.2");

    /* unknown types keep raw rdata */
    header(&p, FLAGS_RESPONSE, 1, 1, 0, 0);
    question(&p, "x", 65280);
    ptr(&p, 12);
    rr_head(&p, 65280, 60, 2);
    u16(&p, 0xABCD);
    CHECK(decode_all(&p, &ps, rrs, 16, 100) == 1);
    char tb[16];
    CHECK_STR(mx_dns_type_name(rrs[0].type, tb, sizeof tb), "TYPE65280");
    CHECK(rrs[0].rdlength == 2 && rrs[0].rdata[0] == 0xAB);
}

static void test_names_and_reverse(void)
{
    char tb[16], out[80];
    CHECK_STR(mx_dns_type_name(15, tb, sizeof tb), "MX");
    CHECK(mx_dns_type_from_name("tlsa") == 52);
    CHECK(mx_dns_type_from_name("AAAA") == 28);
    CHECK(mx_dns_type_from_name("NOPE") == 0);
    CHECK_STR(mx_dns_rcode_name(5, tb, sizeof tb), "REFUSED");
    CHECK_STR(mx_dns_rcode_name(12, tb, sizeof tb), "RCODE12");

    CHECK(mx_dns_reverse_name("192.0.2.11", out, sizeof out) == 0);
    CHECK_STR(out, "11.2.0.192.in-addr.arpa");
    CHECK(mx_dns_reverse_name("2001:db8::10", out, sizeof out) == 0);
    CHECK_STR(out, "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    CHECK(strlen(out) == 72);
    CHECK(mx_dns_reverse_name("not an ip", out, sizeof out) == -1);
    CHECK(mx_dns_reverse_name("192.0.2", out, sizeof out) == -1);
    CHECK(mx_dns_reverse_name("2001:db8::1", out, 20) == -1);
}

int main(void)
{
    test_good_mx();
    test_pointer_loops();
    test_truncated();
    test_rdlength();
    test_txt_tlsa_soa_aaaa();
    test_escapes_and_limits();
    test_names_and_reverse();
    printf("test_dns_decode: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
