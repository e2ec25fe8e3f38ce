/* test_buf.c - the capped byte buffer (core/buf.c). */
#include "buf.h"

#include <stdio.h>
#include <string.h>

static int checks, failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: %s: FAILED %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                        \
    } while (0)

static void test_append_find_consume(void)
{
    mx_buf b;
    mx_buf_init(&b, 0);
    CHECK(b.max == (size_t)1 << 20);
    CHECK(mx_buf_find(&b, '\n') == -1);
    CHECK(mx_buf_append(&b, "hello\r\nworld\n", 13) == 0);
    CHECK(b.len == 13);
    CHECK(mx_buf_find(&b, '\n') == 6);
    mx_buf_consume(&b, 7);
    CHECK(b.len == 6 && memcmp(mx_buf_head(&b), "world\n", 6) == 0);
    CHECK(mx_buf_find(&b, '\n') == 5);
    CHECK(mx_buf_find(&b, 'x') == -1);
    mx_buf_consume(&b, 100); /* more than held: empties */
    CHECK(b.len == 0 && b.start == 0);
    /* find sees NUL bytes as data */
    CHECK(mx_buf_append(&b, "a\0b\nc", 5) == 0);
    CHECK(mx_buf_find(&b, '\0') == 1 && mx_buf_find(&b, '\n') == 3);
    mx_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    mx_buf_free(&b); /* twice is fine */
}

static void test_cap(void)
{
    mx_buf b;
    mx_buf_init(&b, 100);
    char x[150];
    memset(x, 'x', sizeof x);
    CHECK(mx_buf_room(&b) == 100);
    CHECK(mx_buf_append(&b, x, 101) == -1);
    CHECK(b.len == 0);
    CHECK(mx_buf_append(&b, x, 60) == 0);
    CHECK(mx_buf_room(&b) == 40);
    CHECK(mx_buf_append(&b, x, 41) == -1);
    CHECK(mx_buf_append(&b, x, 40) == 0);
    CHECK(mx_buf_room(&b) == 0 && b.len == 100);
    CHECK(mx_buf_reserve(&b, 1) == NULL);
    CHECK(b.cap <= 100);
    /* consuming makes room again */
    mx_buf_consume(&b, 30);
    CHECK(mx_buf_room(&b) == 30);
    CHECK(mx_buf_append(&b, "0123456789", 10) == 0);
    CHECK(b.len == 80);
    CHECK(memcmp(mx_buf_head(&b) + 70, "0123456789", 10) == 0);
    CHECK(b.cap <= 100);
    mx_buf_free(&b);
}

static void test_slide(void)
{
    mx_buf b;
    mx_buf_init(&b, 4096);
    char line[100];
    memset(line, 'a', sizeof line);
    /* a long session: append and consume many times; the allocation stays small */
    size_t max_cap = 0;
    for (int i = 0; i < 10000; i++) {
        line[0] = (char)('0' + i % 10);
        CHECK(mx_buf_append(&b, line, sizeof line) == 0);
        if (b.cap > max_cap) max_cap = b.cap;
        if (b.len >= 250) {
            char first = mx_buf_head(&b)[0];
            CHECK(first >= '0' && first <= '9');
            mx_buf_consume(&b, 200);
        }
    }
    CHECK(max_cap <= 512);
    /* the data survives a slide intact */
    mx_buf_consume(&b, b.len);
    CHECK(mx_buf_append(&b, "0123456789abcdef", 16) == 0);
    mx_buf_consume(&b, 10);
    size_t cap = b.cap;
    char *w = mx_buf_reserve(&b, cap - 6); /* needs the 10 bytes at the front */
    CHECK(w != NULL);
    CHECK(b.start == 0 && b.cap == cap && memcmp(mx_buf_head(&b), "abcdef", 6) == 0);
    memcpy(w, "XYZ", 3);
    mx_buf_commit(&b, 3);
    CHECK(b.len == 9 && memcmp(mx_buf_head(&b), "abcdefXYZ", 9) == 0);
    mx_buf_free(&b);
}

static void test_grow_to_cap(void)
{
    mx_buf b;
    mx_buf_init(&b, 3000); /* not a power of two: the last growth stops at the cap */
    char x[1000];
    memset(x, 'q', sizeof x);
    for (int i = 0; i < 3; i++) CHECK(mx_buf_append(&b, x, sizeof x) == 0);
    CHECK(b.len == 3000 && b.cap == 3000);
    CHECK(mx_buf_append(&b, x, 1) == -1);
    char *w = mx_buf_reserve(&b, 0);
    CHECK(w != NULL);
    mx_buf_free(&b);
}

int main(void)
{
    test_append_find_consume();
    test_cap();
    test_slide();
    test_grow_to_cap();
    printf("test_buf: %d checks, %d passed, %d failed\n", checks, checks - failures, failures);
    return failures ? 1 : 0;
}
