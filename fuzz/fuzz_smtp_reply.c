/*
 * fuzz_smtp_reply.c - libFuzzer target for core/smtp_reply.c.
 *
 * The first byte picks small or default limits (so the caps are hit
 * often) and a chunk size; the rest is the peer's bytes.  Invariants:
 * parsing in one feed and in chunks agree; a complete reply's length is
 * within the input and the byte cap, its lines match nlines and the line
 * cap; errors carry a known reason.
 */
#include "smtp_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    data++, size--;
    mx_smtp_limits lim = {0, 0, 0};
    if (sel & 1) {
        lim.max_line = 4 + (sel >> 4);       /* 4..19 */
        lim.max_lines = 1 + ((sel >> 1) & 7); /* 1..8 */
        lim.max_bytes = 8 + (sel >> 2) * 4;   /* 8..260 */
    }
    size_t chunk = 1 + ((sel >> 3) & 15);
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
