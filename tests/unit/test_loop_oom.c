/* test_loop_oom.c - a wake-up is never lost to a failed realloc.
 *
 * core/loop.c's fire() disarms a wait and then queues its wake-up; when
 * the queue had to grow and realloc failed, the wake-up was dropped after
 * the wait was gone: the task slept forever with nothing armed.  Arming
 * now reserves the queue's room, so it is arming that fails (an error the
 * caller sees), never the wake-up. */
#include "loop.h"

#include <stdio.h>
#include <stdlib.h>

static int checks, failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: %s: FAILED %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                        \
    } while (0)

static int fail_allocs;
static void *failing_realloc(void *p, size_t n) { return fail_allocs ? NULL : realloc(p, n); }

int main(void)
{
    mx_loop_realloc = failing_realloc;
    mx_loop *l = mx_loop_new();
    CHECK(l != NULL);
    if (!l) return 1;

    /* 100 timers already due: the first grows the slots; then make every
     * allocation fail while they fire and are queued */
    enum { N = 100 };
    int armed = 0;
    for (int t = 1; t <= N; t++) armed += mx_loop_wait_timer(l, t, 0) == 0;
    CHECK(armed == N);
    fail_allocs = 1;
    const mx_wake *w;
    int n = mx_loop_step(l, 0, &w);
    CHECK(n == N); /* before: 16 (the queue's first size), 84 tasks lost */
    int seen[N + 1] = {0};
    for (int i = 0; i < n; i++)
        if (w[i].token >= 1 && w[i].token <= N) seen[w[i].token]++;
    int all = 1;
    for (int t = 1; t <= N; t++) all &= seen[t] == 1;
    CHECK(all);
    CHECK(mx_loop_armed(l) == 0);

    /* with allocations failing, arming more than there is room for is an
     * error at once, and whatever was armed still wakes */
    int ok = 0, refused = 0;
    for (int t = 1; t <= 4 * N; t++) {
        int r = mx_loop_wait_timer(l, t, 0);
        if (r == 0) ok++;
        else refused++;
    }
    CHECK(refused > 0);
    n = mx_loop_step(l, 0, &w);
    CHECK(n == ok);
    CHECK(mx_loop_armed(l) == 0);
    fail_allocs = 0;

    mx_loop_free(l);
    printf("test_loop_oom: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
