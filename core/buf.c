/* buf.c - see buf.h */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void mx_buf_init(mx_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max ? max : (size_t)1 << 20;
}

void mx_buf_free(mx_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->start = b->len = b->cap = 0;
}

size_t mx_buf_room(const mx_buf *b) { return b->len >= b->max ? 0 : b->max - b->len; }

char *mx_buf_reserve(mx_buf *b, size_t n)
{
    if (n > mx_buf_room(b)) return NULL;
    if (b->start + b->len + n <= b->cap) return b->data + b->start + b->len;
    if (b->start) { /* slide down first: cheaper than growing */
        memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
        if (b->len + n <= b->cap) return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + n) cap *= 2;
    if (cap > b->max) cap = b->max;
    char *p = realloc(b->data, cap);
    if (!p) return NULL;
    b->data = p;
    b->cap = cap;
    return b->data + b->len;
}

void mx_buf_commit(mx_buf *b, size_t n) { b->len += n; }

int mx_buf_append(mx_buf *b, const void *p, size_t n)
{
    char *w = mx_buf_reserve(b, n);
    if (!w) return -1;
    memcpy(w, p, n);
    b->len += n;
    return 0;
}

void mx_buf_consume(mx_buf *b, size_t n)
{
    if (n >= b->len) {
        b->start = b->len = 0;
        return;
    }
    b->start += n;
    b->len -= n;
}

long mx_buf_find(const mx_buf *b, char c)
{
    if (!b->len) return -1;
    const char *p = memchr(b->data + b->start, c, b->len);
    return p ? (long)(p - (b->data + b->start)) : -1;
}
