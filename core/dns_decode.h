/*
 * dns_decode.h - a bounded decoder for DNS answers (RFC 1035 wire format).
 *
 * Pure C, no Lua and no c-ares, so that the C unit tests and the fuzzer
 * drive exactly the code the binding uses.  The decoder never reads outside
 * [msg, msg + len), follows compression pointers only backwards (so a
 * pointer loop cannot exist) and at most MX_DNS_MAX_HOPS times, and stops
 * after max_records records.
 *
 * Use:
 *   mx_dns_parser p;
 *   if (mx_dns_parse_begin(&p, buf, len, 512) < 0) -> p.error
 *   mx_dns_rr rr;
 *   while ((r = mx_dns_parse_next(&p, &rr)) > 0) { ... rr ... }
 *   r < 0 -> malformed (p.error); r == 0 -> done (p.capped if stopped at the cap)
 *
 * The answer and authority sections are decoded; the additional section is
 * not looked at.  Names come out in presentation form without the final dot
 * ("mx1.example.org"; the root is "."), with "." and "\" inside labels
 * escaped as "\." and "\\" and other bytes outside 0x21-0x7e as "\DDD".
 */
#ifndef MX_DNS_DECODE_H
#define MX_DNS_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* 255 wire octets can need up to 4 characters each when every byte is
 * escaped as \DDD: 63 * 4 * 4 + dots < 1024. */
#define MX_DNS_NAME_MAX 1024
#define MX_DNS_MAX_HOPS 64
#define MX_DNS_ERROR_MAX 160

enum {
    MX_DNS_T_A = 1, MX_DNS_T_NS = 2, MX_DNS_T_CNAME = 5, MX_DNS_T_SOA = 6,
    MX_DNS_T_PTR = 12, MX_DNS_T_MX = 15, MX_DNS_T_TXT = 16, MX_DNS_T_AAAA = 28,
    MX_DNS_T_SRV = 33, MX_DNS_T_DNAME = 39, MX_DNS_T_OPT = 41, MX_DNS_T_DS = 43,
    MX_DNS_T_RRSIG = 46, MX_DNS_T_NSEC = 47, MX_DNS_T_DNSKEY = 48,
    MX_DNS_T_TLSA = 52, MX_DNS_T_CAA = 257,
};

enum { MX_DNS_SEC_ANSWER = 1, MX_DNS_SEC_AUTHORITY = 2 };

typedef struct {
    int section;                   /* MX_DNS_SEC_* */
    char name[MX_DNS_NAME_MAX];    /* owner */
    uint16_t type, rclass;
    uint32_t ttl;
    const uint8_t *rdata;          /* points into the message */
    uint16_t rdlength;
    /* Decoded fields, by type:
     *   A, AAAA       address (text)
     *   MX            preference, host
     *   CNAME, PTR, NS, DNAME   host (the target)
     *   SOA           host = mname, host2 = rname, serial..minimum
     *   TXT           nstrings (the strings are length-prefixed in rdata;
     *                 mx_dns_txt_next walks them)
     *   TLSA          usage, selector, mtype; data = rdata + 3 */
    char address[48];
    uint16_t preference;
    char host[MX_DNS_NAME_MAX];
    char host2[MX_DNS_NAME_MAX];
    uint32_t serial, refresh, retry, expire, minimum;
    unsigned nstrings;
    uint8_t usage, selector, mtype;
} mx_dns_rr;

typedef struct {
    const uint8_t *msg;
    size_t len;
    size_t pos;                    /* offset of the next record */
    unsigned left_an, left_ns;     /* records still to decode per section */
    unsigned decoded, max_records;
    int capped;                    /* stopped at max_records */

    uint16_t id, qdcount, ancount, nscount, arcount;
    uint8_t qr, opcode, aa, tc, rd, ra, ad, cd, rcode;
    int has_question;
    char qname[MX_DNS_NAME_MAX];
    uint16_t qtype, qclass;

    char error[MX_DNS_ERROR_MAX];  /* what is malformed, after a -1 */
} mx_dns_parser;

/* Decode the header and skip the question section.  0 or -1 (p->error). */
int mx_dns_parse_begin(mx_dns_parser *p, const uint8_t *msg, size_t len, unsigned max_records);

/* Decode the next answer/authority record into *rr.
 * 1: a record; 0: no more (p->capped tells whether the cap stopped it);
 * -1: malformed (p->error). */
int mx_dns_parse_next(mx_dns_parser *p, mx_dns_rr *rr);

/* Decode the name at msg[off], whose uncompressed part must end before
 * limit (<= len).  Writes the presentation form to out and the offset just
 * past the name (at its original place) to *next.  0, or -1 with a short
 * reason in err. */
int mx_dns_expand_name(const uint8_t *msg, size_t len, size_t off, size_t limit,
                       char *out, size_t outsz, size_t *next, const char **err);

/* Walk the TXT character-strings of rr: *off starts at 0.  1 and the string
 * in (*s, *n); 0 at the end. */
int mx_dns_txt_next(const mx_dns_rr *rr, size_t *off, const uint8_t **s, size_t *n);

/* "MX" for 15, "TYPE65280" for unknown types (buf: at least 16 bytes). */
const char *mx_dns_type_name(uint16_t type, char *buf, size_t bufsz);
/* The type for a mnemonic (case-insensitive), or 0. */
uint16_t mx_dns_type_from_name(const char *name);
/* "NOERROR", "NXDOMAIN", ... "RCODE12" (buf: at least 16 bytes). */
const char *mx_dns_rcode_name(unsigned rcode, char *buf, size_t bufsz);

/* The reverse-lookup name of a numeric IPv4 or IPv6 address:
 * "10.2.0.192.in-addr.arpa", "0.1.0.0. ... .8.b.d.0.1.0.0.2.ip6.arpa".
 * 0, or -1 when ip is not a numeric address or out is too small (need 74). */
int mx_dns_reverse_name(const char *ip, char *out, size_t outsz);

#ifdef lua_h
/* [-0, +1, e] (l_dns.c) the record as the Lua table query:result() gives */
void mx_dns_push_rr(lua_State *L, const mx_dns_rr *rr);
#endif

#endif
