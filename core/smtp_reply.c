/* smtp_reply.c - see smtp_reply.h */
#include "smtp_reply.h"

#include <string.h>

void mx_smtp_parser_init(mx_smtp_parser *p, const mx_smtp_limits *lim)
{
    memset(p, 0, sizeof *p);
    if (lim) p->lim = *lim;
    if (!p->lim.max_line) p->lim.max_line = MX_SMTP_DEFAULT_MAX_LINE;
    if (!p->lim.max_lines) p->lim.max_lines = MX_SMTP_DEFAULT_MAX_LINES;
    if (!p->lim.max_bytes) p->lim.max_bytes = MX_SMTP_DEFAULT_MAX_BYTES;
    p->state = MX_REPLY_MORE;
}

static int fail(mx_smtp_parser *p, int err)
{
    p->err = err;
    return p->state = MX_REPLY_ERROR;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Does the line at l (n bytes seen, no LF yet) start like a reply line?
 * Checked before an overlong line is discarded, so that garbage is refused
 * at once and not read up to the discard cap. */
static int plausible_start(const unsigned char *l, size_t n)
{
    for (size_t i = 0; i < 3 && i < n; i++)
        if (!is_digit(l[i])) return 0;
    return n < 4 || l[3] == ' ' || l[3] == '-';
}

int mx_smtp_parse(mx_smtp_parser *p, const char *buf, size_t len)
{
    if (p->state != MX_REPLY_MORE) return p->state;
    for (;;) {
        if (p->discarding) {
            /* the kept head is buf[pos, pos + max_line - 1); the rest of the
             * line, up to (not including) its LF, goes */
            size_t from = p->pos + p->lim.max_line - 1;
            const char *nl = len > from ? memchr(buf + from, '\n', len - from) : NULL;
            size_t n = (nl ? (size_t)(nl - buf) : len) - from;
            if (n > p->lim.discard_max - p->cut_total) return fail(p, MX_REPLY_LINE_TOO_LONG);
            if (nl) p->discarding = 0;
            p->scanned = p->lim.max_line - 1;
            if (n) {
                p->cut_off = from;
                p->cut_len = n;
                p->cut_total += n;
                p->cur_cut += n;
                return MX_REPLY_CUT; /* the caller cuts, then calls again */
            }
            if (!nl) return MX_REPLY_MORE;
        }
        /* Nothing past max_bytes can belong to an acceptable reply. */
        size_t limit = len < p->lim.max_bytes ? len : p->lim.max_bytes;
        size_t start = p->pos + p->scanned;
        /* The LF of this line must lie within max_line bytes of its start. */
        size_t line_cap = p->pos + p->lim.max_line;
        size_t end = limit < line_cap ? limit : line_cap;
        const char *nl = end > start ? memchr(buf + start, '\n', end - start) : NULL;
        if (!nl) {
            if (end > p->pos) p->scanned = end - p->pos;
            if (end == line_cap) {
                if (p->lim.discard_max && p->cut_total < p->lim.discard_max &&
                    plausible_start((const unsigned char *)buf + p->pos, p->lim.max_line)) {
                    p->discarding = 1;
                    continue;
                }
                return fail(p, MX_REPLY_LINE_TOO_LONG);
            }
            if (end == p->lim.max_bytes) return fail(p, MX_REPLY_TOO_MANY_BYTES);
            return MX_REPLY_MORE;
        }
        size_t lf = (size_t)(nl - buf);
        const unsigned char *l = (const unsigned char *)buf + p->pos;
        size_t n = lf - p->pos;
        if (n && l[n - 1] == '\r') n--;
        if (n < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2]) ||
            (n > 3 && l[3] != ' ' && l[3] != '-'))
            return fail(p, MX_REPLY_MALFORMED);
        int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
        if (p->nlines && code != p->code) return fail(p, MX_REPLY_CODE_MISMATCH);
        p->code = code;
        p->nlines++;
        size_t real = lf + 1 - p->pos + p->cur_cut;
        if (real > p->longest) p->longest = real, p->longest_line = p->nlines;
        p->cur_cut = 0;
        p->pos = lf + 1;
        p->scanned = 0;
        if (n == 3 || l[3] == ' ') {
            p->consumed = p->pos;
            return p->state = MX_REPLY_DONE;
        }
        if (p->nlines >= p->lim.max_lines) return fail(p, MX_REPLY_TOO_MANY_LINES);
    }
}

const char *mx_smtp_strerror(int err)
{
    switch (err) {
    case MX_REPLY_OK: return "no error";
    case MX_REPLY_MALFORMED: return "malformed reply line (no 3-digit code followed by space, '-' or end of line)";
    case MX_REPLY_CODE_MISMATCH: return "reply lines carry different codes";
    case MX_REPLY_LINE_TOO_LONG: return "reply line too long";
    case MX_REPLY_TOO_MANY_LINES: return "too many lines in one reply";
    case MX_REPLY_TOO_MANY_BYTES: return "reply too large";
    default: return "unknown error";
    }
}

int mx_smtp_next_line(const char *buf, size_t consumed, size_t *off, const char **text, size_t *textlen)
{
    if (*off >= consumed) return 0;
    const char *l = buf + *off;
    const char *nl = memchr(l, '\n', consumed - *off);
    size_t n = nl ? (size_t)(nl - l) : consumed - *off;
    *off += n + (nl ? 1 : 0);
    if (n && l[n - 1] == '\r') n--;
    if (n > 4) {
        *text = l + 4;
        *textlen = n - 4;
    } else {
        *text = l + (n < 4 ? n : 4);
        *textlen = 0;
    }
    return 1;
}

/* 1 to 3 digits at t[*i]; advances *i */
static int digits(const char *t, size_t len, size_t *i)
{
    size_t k = 0;
    while (*i < len && k < 4 && is_digit((unsigned char)t[*i])) (*i)++, k++;
    return k >= 1 && k <= 3;
}

size_t mx_smtp_enhanced(const char *t, size_t len, int code, char *out)
{
    size_t i = 0;
    if (len < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[0] - '0' != code / 100) return 0;
    i = 1;
    if (t[i++] != '.') return 0;
    if (!digits(t, len, &i)) return 0;
    if (i >= len || t[i++] != '.') return 0;
    if (!digits(t, len, &i)) return 0;
    if (i < len && t[i] != ' ') return 0;
    memcpy(out, t, i);
    out[i] = '\0';
    return i;
}
