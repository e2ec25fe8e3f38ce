/*
 * smtp_reply.h - an incremental parser for ONE SMTP reply (RFC 5321 4.2).
 *
 * Pure C, no I/O, no allocation: the caller owns the bytes.  Feed it the
 * buffer that starts at the reply's first byte, again each time more bytes
 * were appended; it resumes where it stopped, so a peer that drips one byte
 * at a time costs O(n) in total, not O(n^2).
 *
 *   250-mx.example.org            continuation: same code, '-'
 *   250-PIPELINING
 *   250 SIZE 1000                 last line: ' ', or a bare "250"
 *
 * CRLF or a bare LF end a line (a CR before the LF is not part of the text).
 * Bytes are never interpreted as C strings: NUL is ordinary text.
 * Everything the peer controls is capped (mx_smtp_limits).
 */
#ifndef MX_SMTP_REPLY_H
#define MX_SMTP_REPLY_H

#include <stddef.h>

typedef struct {
    size_t max_line;  /* bytes per line including CRLF (default 4096; RFC 5321 says 512) */
    size_t max_lines; /* lines per reply (default 100) */
    size_t max_bytes; /* bytes per reply (default 65536) */
    /* Bytes of overlong lines the parser may drop per reply (0: none, an
     * overlong line is an error).  With it, a line longer than max_line
     * keeps its first max_line - 1 bytes and the rest up to its LF is cut
     * out of the caller's buffer (MX_REPLY_CUT): a 1 MiB greeting line is
     * reported, not fatal (RFC 5321 4.5.3.1.5 allows 512 octets). */
    size_t discard_max;
} mx_smtp_limits;

#define MX_SMTP_DEFAULT_MAX_LINE 4096
#define MX_SMTP_DEFAULT_MAX_LINES 100
#define MX_SMTP_DEFAULT_MAX_BYTES 65536

/* mx_smtp_parse results */
enum { MX_REPLY_ERROR = -1, MX_REPLY_MORE = 0, MX_REPLY_DONE = 1, MX_REPLY_CUT = 2 };

/* why it failed */
enum {
    MX_REPLY_OK = 0,
    MX_REPLY_MALFORMED,      /* a line without a 3-digit code then ' ', '-' or end */
    MX_REPLY_CODE_MISMATCH,  /* a continuation line with another code */
    MX_REPLY_LINE_TOO_LONG,  /* no LF within max_line bytes */
    MX_REPLY_TOO_MANY_LINES, /* more than max_lines lines */
    MX_REPLY_TOO_MANY_BYTES, /* no end within max_bytes bytes */
};

typedef struct {
    mx_smtp_limits lim;
    size_t pos;      /* start of the first line not yet complete */
    size_t scanned;  /* bytes after pos already searched for LF */
    size_t nlines;   /* complete lines so far */
    size_t consumed; /* when done: the reply's length, terminator included */
    int code;        /* the reply code (once the first line is complete) */
    int err;         /* MX_REPLY_* reason when the result is MX_REPLY_ERROR */
    int state;       /* the last result; DONE and ERROR are final */
    size_t longest;      /* the longest complete line's real length, LF included */
    size_t longest_line; /* its number (1-based) */
    size_t cut_total;    /* bytes cut out of overlong lines so far */
    size_t cut_off, cut_len; /* MX_REPLY_CUT: remove buf[cut_off, cut_off+cut_len) */
    size_t cur_cut;      /* bytes cut from the line being read */
    int discarding;      /* inside an overlong line, past its kept head */
} mx_smtp_parser;

/* lim may be NULL; zero fields take the defaults. */
void mx_smtp_parser_init(mx_smtp_parser *p, const mx_smtp_limits *lim);

/* Parse buf[0, len), which must begin with the bytes seen by earlier calls
 * (unchanged, apart from the cuts asked for) since the last init.  Returns
 * MX_REPLY_DONE (p->consumed, p->code, p->nlines are set), MX_REPLY_MORE,
 * MX_REPLY_CUT (only with lim.discard_max: remove p->cut_len bytes at
 * p->cut_off from the buffer, moving what follows down, and call again),
 * or MX_REPLY_ERROR (p->err, and p->nlines + 1 is the offending line). */
int mx_smtp_parse(mx_smtp_parser *p, const char *buf, size_t len);

/* A short English description of an MX_REPLY_* reason. */
const char *mx_smtp_strerror(int err);

/* Walk the lines of a complete reply buf[0, consumed): start with *off = 0;
 * each call sets *text and *textlen to the text after "250-" or "250 " (empty for
 * a bare "250") and returns 1, then 0 when there are no more lines. */
int mx_smtp_next_line(const char *buf, size_t consumed, size_t *off, const char **text, size_t *textlen);

/* RFC 3463 enhanced status code at the start of text: class (2, 4 or 5,
 * the same as the reply code's first digit) "." subject (1-3 digits) "."
 * detail (1-3 digits), then a space or the end.  Copies it NUL-terminated
 * into out (at least 16 bytes) and returns its length, or returns 0. */
size_t mx_smtp_enhanced(const char *text, size_t len, int code, char *out);

#endif
