/*
 * fuzz_smtp_reply.c - libFuzzer target for core/smtp_reply.c.
 *
 * The first byte picks small or default limits (so the caps are hit
 * often) and a chunk size; the rest is the peer's bytes.  Invariants:
 * parsing in one feed and in chunks agree; a complete reply's length is
 * within the input and the byte cap, its lines match nlines and the line
 * cap; errors carry a known reason.  Bit 1 of the first byte (with small
 * limits) turns on discard_max: overlong lines are cut out of a private
 * buffer as l_smtp.c does, in both feeds, and the buffers must agree.
 */
#include "smtp_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

/* Feed in[0, size) in chunks into a private buffer, applying the cuts the
 * parser asks for (as l_smtp.c does).  Returns the final result. */
static int feed_cut(const uint8_t *in, size_t size, size_t chunk, mx_smtp_parser *p, const mx_smtp_limits *lim,
                    char *work, size_t *len)
{
    mx_smtp_parser_init(p, lim);
    size_t fed = 0;
    int r = MX_REPLY_MORE;
    *len = 0;
    for (;;) {
        if (r == MX_REPLY_CUT) {
            REQUIRE(p->cut_off + p->cut_len <= *len && p->cut_len > 0);
            memmove(work + p->cut_off, work + p->cut_off + p->cut_len, *len - p->cut_off - p->cut_len);
            *len -= p->cut_len;
        } else if (r == MX_REPLY_MORE) {
            if (fed == size && fed) break;
            size_t k = size - fed < chunk ? size - fed : chunk;
            memcpy(work + *len, in + fed, k);
            *len += k, fed += k;
        } else {
            break;
        }
        r = mx_smtp_parse(p, work, *len);
        if (r == MX_REPLY_MORE && fed == size) break;
    }
    return r;
}

static int cut_case(const uint8_t *data, size_t size, const mx_smtp_limits *lim, size_t chunk)
{
    char *wa = malloc(size ? size : 1), *wb = malloc(size ? size : 1);
    size_t la, lb;
    mx_smtp_parser a, b;
    int ra = feed_cut(data, size, size ? size : 1, &a, lim, wa, &la);
    int rb = feed_cut(data, size, chunk, &b, lim, wb, &lb);
    REQUIRE(ra == rb && a.err == b.err);
    REQUIRE(a.cut_total <= lim->discard_max);
    if (ra == MX_REPLY_DONE) {
        REQUIRE(a.consumed == b.consumed && a.code == b.code && a.nlines == b.nlines);
        REQUIRE(a.cut_total == b.cut_total && a.longest == b.longest);
        REQUIRE(memcmp(wa, wb, a.consumed) == 0 && wa[a.consumed - 1] == '\n');
        REQUIRE(a.consumed + a.cut_total <= size && a.longest <= a.consumed + a.cut_total);
        size_t off = 0, tl, lines = 0;
        const char *t;
        while (mx_smtp_next_line(wa, a.consumed, &off, &t, &tl)) {
            REQUIRE(tl + 4 <= a.lim.max_line);
            lines++;
        }
        REQUIRE(lines == a.nlines);
    }
    free(wa);
    free(wb);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    data++, size--;
    mx_smtp_limits lim = {0};
    if (sel & 1) {
        lim.max_line = 4 + (sel >> 4);       /* 4..19 */
        lim.max_lines = 1 + ((sel >> 1) & 7); /* 1..8 */
        lim.max_bytes = 8 + (sel >> 2) * 4;   /* 8..260 */
        if (sel & 2) lim.discard_max = 1 + (sel >> 2); /* 1..64 */
    }
    size_t chunk = 1 + ((sel >> 3) & 15);
    if (lim.discard_max) return cut_case(data, size, &lim, chunk);
    /* a private copy, so reads past the input are caught by ASan */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);

    mx_smtp_parser a, b;
    mx_smtp_parser_init(&a, &lim);
    int ra = mx_smtp_parse(&a, buf, size);

    mx_smtp_parser_init(&b, &lim);
    int rb = MX_REPLY_MORE;
    for (size_t n = 0; rb == MX_REPLY_MORE && n < size;) {
        n = n + chunk < size ? n + chunk : size;
        rb = mx_smtp_parse(&b, buf, n);
    }
    if (size == 0) rb = mx_smtp_parse(&b, buf, 0);
    REQUIRE(ra == rb);
    REQUIRE(a.err == b.err);
    if (ra == MX_REPLY_DONE) {
        REQUIRE(a.consumed == b.consumed && a.code == b.code && a.nlines == b.nlines);
        REQUIRE(a.consumed >= 4 && a.consumed <= size && a.consumed <= a.lim.max_bytes);
        REQUIRE(buf[a.consumed - 1] == '\n');
        REQUIRE(a.code >= 0 && a.code <= 999);
        REQUIRE(a.nlines >= 1 && a.nlines <= a.lim.max_lines);
        size_t off = 0, tl, lines = 0;
        const char *t;
        while (mx_smtp_next_line(buf, a.consumed, &off, &t, &tl)) {
            REQUIRE(t >= buf && t + tl <= buf + a.consumed);
            REQUIRE(tl + 4 <= a.lim.max_line);
            char enh[16];
            size_t el = mx_smtp_enhanced(t, tl, a.code, enh);
            if (el) REQUIRE(el <= 9 && el <= tl && strlen(enh) == el && memcmp(enh, t, el) == 0);
            lines++;
        }
        REQUIRE(lines == a.nlines);
    } else if (ra == MX_REPLY_ERROR) {
        REQUIRE(a.err >= MX_REPLY_MALFORMED && a.err <= MX_REPLY_TOO_MANY_BYTES);
        REQUIRE(mx_smtp_strerror(a.err)[0] != '\0');
    } else {
        REQUIRE(ra == MX_REPLY_MORE);
        REQUIRE(size < a.lim.max_bytes);
    }
    free(buf);
    return 0;
}
