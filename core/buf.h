/*
 * buf.h - a byte buffer with a hard cap, for bytes a peer sends us.
 * Data lives in data[start, start+len); space is reclaimed by sliding the
 * data down before growing, so a long session does not grow without bound.
 */
#ifndef MX_BUF_H
#define MX_BUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t start, len, cap;
    size_t max; /* never hold more than this many bytes (0: 1 MiB) */
} mx_buf;

void mx_buf_init(mx_buf *b, size_t max);
void mx_buf_free(mx_buf *b);
/* Make room for n more bytes at the tail; returns the write pointer or NULL
 * when the cap (or memory) forbids it. */
char *mx_buf_reserve(mx_buf *b, size_t n);
void mx_buf_commit(mx_buf *b, size_t n);      /* n bytes were written at tail */
int mx_buf_append(mx_buf *b, const void *p, size_t n); /* 0 or -1 (cap) */
void mx_buf_consume(mx_buf *b, size_t n);
static inline const char *mx_buf_head(const mx_buf *b) { return b->data + b->start; }
/* Offset of the first byte c, or -1. */
long mx_buf_find(const mx_buf *b, char c);
/* Room left before the cap. */
size_t mx_buf_room(const mx_buf *b);

#endif
