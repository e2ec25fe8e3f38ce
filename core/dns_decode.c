/*
 * dns_decode.c - bounded decoding of DNS answers.  See dns_decode.h.
 *
 * Every read is checked against the message length first; the peer
 * controls every byte here (GUIDE section 5: caps on everything the peer
 * controls).
 */
#include "dns_decode.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Append one label byte in presentation form; 0 or -1 when out is full. */
static int put_char(char *out, size_t outsz, size_t *o, uint8_t c)
{
    char tmp[5];
    size_t n;
    if (c == '.' || c == '\\') {
        tmp[0] = '\\';
        tmp[1] = (char)c;
        n = 2;
    } else if (c < 0x21 || c > 0x7e) {
        snprintf(tmp, sizeof tmp, "\\%03u", c);
        n = 4;
    } else {
        tmp[0] = (char)c;
        n = 1;
    }
    if (*o + n >= outsz) return -1;
    memcpy(out + *o, tmp, n);
    *o += n;
    return 0;
}

int mx_dns_expand_name(const uint8_t *msg, size_t len, size_t off, size_t limit,
                       char *out, size_t outsz, size_t *next, const char **err)
{
    size_t pos = off, end = limit < len ? limit : len;
    size_t seg_start = off; /* where the labels being read began */
    size_t after = 0;       /* offset just past the name in its original place */
    int jumped = 0, hops = 0;
    size_t wire = 1;        /* octets of the name in wire form, root included */
    size_t o = 0;

    if (outsz < 2) {
        *err = "output buffer too small";
        return -1;
    }
    for (;;) {
        if (pos >= end) {
            *err = jumped ? "compressed name runs past the end of the message"
                          : "name runs past the end of its data";
            return -1;
        }
        uint8_t c = msg[pos];
        if ((c & 0xC0) == 0xC0) {
            if (pos + 1 >= end) {
                *err = "truncated compression pointer";
                return -1;
            }
            size_t target = ((size_t)(c & 0x3F) << 8) | msg[pos + 1];
            /* Only strictly backwards, before everything read so far: the
             * start offset decreases with each jump, so no loop can form. */
            if (target >= seg_start) {
                *err = "compression pointer loop (pointer does not point backwards)";
                return -1;
            }
            if (++hops > MX_DNS_MAX_HOPS) {
                *err = "too many compression pointers";
                return -1;
            }
            if (!jumped) after = pos + 2;
            jumped = 1;
            pos = seg_start = target;
            end = len;
            continue;
        }
        if (c & 0xC0) {
            *err = "reserved label type";
            return -1;
        }
        if (c == 0) {
            if (!jumped) after = pos + 1;
            break;
        }
        if (pos + 1 + c > end) {
            *err = jumped ? "label runs past the end of the message" : "label runs past the end of its data";
            return -1;
        }
        wire += (size_t)c + 1;
        if (wire > 255) {
            *err = "name longer than 255 octets";
            return -1;
        }
        if (o > 0) {
            if (o + 1 >= outsz) goto too_long;
            out[o++] = '.';
        }
        for (size_t i = 0; i < c; i++)
            if (put_char(out, outsz, &o, msg[pos + 1 + i]) < 0) goto too_long;
        pos += (size_t)c + 1;
    }
    if (o == 0) out[o++] = '.';
    out[o] = '\0';
    *next = after;
    return 0;
too_long:
    *err = "name too long for the output buffer";
    return -1;
}

static int fail(mx_dns_parser *p, const char *fmt, const char *a, const char *b)
{
    /* a long message is cut on purpose: errors are bounded like the rest */
    if (snprintf(p->error, sizeof p->error, fmt, a, b) >= (int)sizeof p->error)
        p->error[sizeof p->error - 2] = '~';
    return -1;
}

int mx_dns_parse_begin(mx_dns_parser *p, const uint8_t *msg, size_t len, unsigned max_records)
{
    memset(p, 0, offsetof(mx_dns_parser, qname));
    p->qname[0] = '\0';
    p->error[0] = '\0';
    p->msg = msg;
    p->len = len;
    p->max_records = max_records;
    if (!msg || len < 12) return fail(p, "%s%s", "message shorter than the 12-byte header", "");
    p->id = get16(msg);
    p->qr = (msg[2] >> 7) & 1;
    p->opcode = (msg[2] >> 3) & 0x0F;
    p->aa = (msg[2] >> 2) & 1;
    p->tc = (msg[2] >> 1) & 1;
    p->rd = msg[2] & 1;
    p->ra = (msg[3] >> 7) & 1;
    p->ad = (msg[3] >> 5) & 1;
    p->cd = (msg[3] >> 4) & 1;
    p->rcode = msg[3] & 0x0F;
    p->qdcount = get16(msg + 4);
    p->ancount = get16(msg + 6);
    p->nscount = get16(msg + 8);
    p->arcount = get16(msg + 10);
    if (!p->qr) return fail(p, "%s%s", "not a response (QR bit clear)", "");

    size_t pos = 12;
    for (unsigned i = 0; i < p->qdcount; i++) {
        char name[MX_DNS_NAME_MAX];
        const char *err;
        size_t next;
        if (mx_dns_expand_name(msg, len, pos, len, name, sizeof name, &next, &err) < 0)
            return fail(p, "question: %s%s", err, "");
        if (next + 4 > len) return fail(p, "%s%s", "question truncated", "");
        if (i == 0) {
            memcpy(p->qname, name, sizeof name);
            p->qtype = get16(msg + next);
            p->qclass = get16(msg + next + 2);
            p->has_question = 1;
        }
        pos = next + 4;
    }
    p->pos = pos;
    p->left_an = p->ancount;
    p->left_ns = p->nscount;
    return 0;
}

/* The name in rdata, which must end exactly at rdend when exact is set. */
static int rdata_name(mx_dns_parser *p, size_t off, size_t rdend, char *out, size_t *next,
                      const char *what)
{
    const char *err;
    if (mx_dns_expand_name(p->msg, p->len, off, rdend, out, MX_DNS_NAME_MAX, next, &err) < 0) {
        snprintf(p->error, sizeof p->error, "%s: %s", what, err);
        return -1;
    }
    return 0;
}

static int decode_rdata(mx_dns_parser *p, mx_dns_rr *rr, size_t rdoff)
{
    size_t rdend = rdoff + rr->rdlength, next;
    const uint8_t *d = p->msg + rdoff;
    char tname[16];
    const char *tn = mx_dns_type_name(rr->type, tname, sizeof tname);

    switch (rr->type) {
    case MX_DNS_T_A:
    case MX_DNS_T_AAAA: {
        size_t want = rr->type == MX_DNS_T_A ? 4 : 16;
        if (rr->rdlength != want) {
            snprintf(p->error, sizeof p->error, "%s rdata is %u bytes (expected %zu)", tn,
                     (unsigned)rr->rdlength, want);
            return -1;
        }
        inet_ntop(rr->type == MX_DNS_T_A ? AF_INET : AF_INET6, d, rr->address, sizeof rr->address);
        return 0;
    }
    case MX_DNS_T_MX:
        if (rr->rdlength < 3) {
            snprintf(p->error, sizeof p->error, "MX rdata is %u bytes (too short)", (unsigned)rr->rdlength);
            return -1;
        }
        rr->preference = get16(d);
        if (rdata_name(p, rdoff + 2, rdend, rr->host, &next, "MX exchange") < 0) return -1;
        break;
    case MX_DNS_T_CNAME:
    case MX_DNS_T_PTR:
    case MX_DNS_T_NS:
    case MX_DNS_T_DNAME:
        if (rdata_name(p, rdoff, rdend, rr->host, &next, tn) < 0) return -1;
        break;
    case MX_DNS_T_SOA:
        if (rdata_name(p, rdoff, rdend, rr->host, &next, "SOA mname") < 0) return -1;
        if (rdata_name(p, next, rdend, rr->host2, &next, "SOA rname") < 0) return -1;
        if (next + 20 != rdend) {
            snprintf(p->error, sizeof p->error, "SOA rdata has %s bytes after the names (expected 20)",
                     next + 20 > rdend ? "fewer than 20" : "more than 20");
            return -1;
        }
        d = p->msg + next;
        rr->serial = get32(d);
        rr->refresh = get32(d + 4);
        rr->retry = get32(d + 8);
        rr->expire = get32(d + 12);
        rr->minimum = get32(d + 16);
        return 0;
    case MX_DNS_T_TXT: {
        size_t o = 0;
        while (o < rr->rdlength) {
            size_t n = d[o];
            if (o + 1 + n > rr->rdlength) {
                snprintf(p->error, sizeof p->error, "TXT string %u runs past the end of its rdata",
                         rr->nstrings + 1);
                return -1;
            }
            rr->nstrings++;
            o += 1 + n;
        }
        return 0;
    }
    case MX_DNS_T_TLSA:
        if (rr->rdlength < 3) {
            snprintf(p->error, sizeof p->error, "TLSA rdata is %u bytes (too short)", (unsigned)rr->rdlength);
            return -1;
        }
        rr->usage = d[0];
        rr->selector = d[1];
        rr->mtype = d[2];
        return 0;
    default:
        return 0; /* kept as raw rdata */
    }
    if (next != rdend) {
        snprintf(p->error, sizeof p->error, "%s rdata has %zu bytes after the name", tn, rdend - next);
        return -1;
    }
    return 0;
}

int mx_dns_parse_next(mx_dns_parser *p, mx_dns_rr *rr)
{
    if (p->left_an == 0 && p->left_ns == 0) return 0;
    if (p->decoded >= p->max_records) {
        p->capped = 1;
        return 0;
    }
    int section = p->left_an ? MX_DNS_SEC_ANSWER : MX_DNS_SEC_AUTHORITY;
    const char *sname = section == MX_DNS_SEC_ANSWER ? "answer" : "authority";
    unsigned index = section == MX_DNS_SEC_ANSWER ? p->ancount - p->left_an + 1 : p->nscount - p->left_ns + 1;
    char where[48];
    snprintf(where, sizeof where, "%s record %u", sname, index);

    memset(rr, 0, offsetof(mx_dns_rr, name));
    rr->name[0] = rr->host[0] = rr->host2[0] = rr->address[0] = '\0';
    rr->preference = 0;
    rr->serial = rr->refresh = rr->retry = rr->expire = rr->minimum = 0;
    rr->nstrings = 0;
    rr->usage = rr->selector = rr->mtype = 0;
    rr->section = section;

    const char *err;
    size_t next;
    if (mx_dns_expand_name(p->msg, p->len, p->pos, p->len, rr->name, sizeof rr->name, &next, &err) < 0)
        return fail(p, "%s: owner name: %s", where, err);
    if (next + 10 > p->len) return fail(p, "%s: %s", where, "truncated (no room for type, class, TTL and length)");
    const uint8_t *h = p->msg + next;
    rr->type = get16(h);
    rr->rclass = get16(h + 2);
    rr->ttl = get32(h + 4);
    if (rr->ttl > 0x7fffffffu) rr->ttl = 0; /* RFC 2181 section 8 */
    rr->rdlength = get16(h + 8);
    size_t rdoff = next + 10;
    if (rdoff + rr->rdlength > p->len) return fail(p, "%s: %s", where, "rdata runs past the end of the message");
    rr->rdata = p->msg + rdoff;
    if (decode_rdata(p, rr, rdoff) < 0) {
        char what[MX_DNS_ERROR_MAX];
        memcpy(what, p->error, sizeof what);
        return fail(p, "%s: %s", where, what);
    }
    p->pos = rdoff + rr->rdlength;
    if (section == MX_DNS_SEC_ANSWER) p->left_an--;
    else p->left_ns--;
    p->decoded++;
    return 1;
}

int mx_dns_txt_next(const mx_dns_rr *rr, size_t *off, const uint8_t **s, size_t *n)
{
    if (!rr->rdata || *off >= rr->rdlength) return 0;
    size_t len = rr->rdata[*off];
    if (*off + 1 + len > rr->rdlength) return 0; /* checked by the decoder already */
    *s = rr->rdata + *off + 1;
    *n = len;
    *off += 1 + len;
    return 1;
}

static const struct { uint16_t type; const char *name; } types[] = {
    {MX_DNS_T_A, "A"},       {MX_DNS_T_NS, "NS"},       {MX_DNS_T_CNAME, "CNAME"},
    {MX_DNS_T_SOA, "SOA"},   {MX_DNS_T_PTR, "PTR"},     {MX_DNS_T_MX, "MX"},
    {MX_DNS_T_TXT, "TXT"},   {MX_DNS_T_AAAA, "AAAA"},   {MX_DNS_T_SRV, "SRV"},
    {MX_DNS_T_DNAME, "DNAME"}, {MX_DNS_T_OPT, "OPT"},   {MX_DNS_T_DS, "DS"},
    {MX_DNS_T_RRSIG, "RRSIG"}, {MX_DNS_T_NSEC, "NSEC"}, {MX_DNS_T_DNSKEY, "DNSKEY"},
    {MX_DNS_T_TLSA, "TLSA"}, {MX_DNS_T_CAA, "CAA"},
};

const char *mx_dns_type_name(uint16_t type, char *buf, size_t bufsz)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == type) return types[i].name;
    snprintf(buf, bufsz, "TYPE%u", (unsigned)type);
    return buf;
}

uint16_t mx_dns_type_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(types[i].name, name) == 0) return types[i].type;
    return 0;
}

const char *mx_dns_rcode_name(unsigned rcode, char *buf, size_t bufsz)
{
    static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
                                        "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"};
    if (rcode < sizeof names / sizeof names[0]) return names[rcode];
    snprintf(buf, bufsz, "RCODE%u", rcode);
    return buf;
}

int mx_dns_reverse_name(const char *ip, char *out, size_t outsz)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1) {
        int n = snprintf(out, outsz, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
        return n > 0 && (size_t)n < outsz ? 0 : -1;
    }
    if (inet_pton(AF_INET6, ip, a) == 1) {
        static const char hex[] = "0123456789abcdef";
        if (outsz < 74) return -1;
        size_t o = 0;
        for (int i = 15; i >= 0; i--) {
            out[o++] = hex[a[i] & 0x0F];
            out[o++] = '.';
            out[o++] = hex[a[i] >> 4];
            out[o++] = '.';
        }
        memcpy(out + o, "ip6.arpa", 9);
        return 0;
    }
    return -1;
}
