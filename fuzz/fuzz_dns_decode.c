/*
 * fuzz_dns_decode.c - libFuzzer target: arbitrary bytes as a DNS answer.
 *
 * Drives what core.dns's result() does with a peer's packet: the header,
 * every answer/authority record with a small and a large record cap, the
 * TXT strings, names at arbitrary offsets, and reverse names of the input
 * read as text.  The sanitizers catch any read outside the buffer; a
 * name or error that is not NUL-terminated within its buffer aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns_decode.h"

static void check_str(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap)) abort();
}

static void walk(const uint8_t *data, size_t size, unsigned cap)
{
    static mx_dns_parser p;
    static mx_dns_rr rr;
    if (mx_dns_parse_begin(&p, data, size, cap) < 0) {
        check_str(p.error, sizeof p.error);
        return;
    }
    check_str(p.qname, sizeof p.qname);
    unsigned n = 0;
    int r;
    while ((r = mx_dns_parse_next(&p, &rr)) > 0) {
        n++;
        check_str(rr.name, sizeof rr.name);
        check_str(rr.host, sizeof rr.host);
        check_str(rr.host2, sizeof rr.host2);
        check_str(rr.address, sizeof rr.address);
        if (rr.rdata < data || rr.rdata + rr.rdlength > data + size) abort();
        size_t off = 0, len;
        const uint8_t *s;
        unsigned strings = 0;
        while (mx_dns_txt_next(&rr, &off, &s, &len)) {
            if (s < data || s + len > data + size) abort();
            strings++;
        }
        if (rr.type == MX_DNS_T_TXT && strings != rr.nstrings) abort();
        char tb[16];
        check_str(mx_dns_type_name(rr.type, tb, sizeof tb), 16);
    }
    if (r < 0) check_str(p.error, sizeof p.error);
    if (n > cap) abort();
    if (r == 0 && p.capped && n != cap) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    walk(data, size, 3);
    walk(data, size, 512);

    /* names at a few offsets chosen by the input itself */
    if (size >= 2) {
        char name[MX_DNS_NAME_MAX];
        const char *err;
        size_t next;
        size_t offs[3] = {12 % size, data[0] % size, ((size_t)data[1] << 4) % size};
        for (int i = 0; i < 3; i++) {
            /* offs[i] < size, so the modulus is at least 2 */
            size_t limit = size - (data[size - 1] % (size - offs[i] + 1));
            if (mx_dns_expand_name(data, size, offs[i], limit, name, sizeof name, &next, &err) == 0) {
                check_str(name, sizeof name);
                if (next > size) abort();
            }
        }
    }

    /* the input as an address string */
    char ip[64], out[80];
    size_t n = size < sizeof ip - 1 ? size : sizeof ip - 1;
    memcpy(ip, data, n);
    ip[n] = '\0';
    if (mx_dns_reverse_name(ip, out, sizeof out) == 0) check_str(out, sizeof out);
    return 0;
}
