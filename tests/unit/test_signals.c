/* test_signals.c - SIGINT/SIGTERM through the loop's self-pipe
 * (core/loop.c): a loop that is freed gives the signals back only if it
 * still owns them, and gives back what was there before. */
#include "loop.h"

#include <signal.h>
#include <stdio.h>

static int checks, failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: %s: FAILED %s\n", __FILE__, __LINE__, __func__, #cond); \
        }                                                                        \
    } while (0)

static volatile sig_atomic_t own_handler_ran;
static void own_handler(int sig) { (void)sig; own_handler_ran = 1; }

static int got_signal_wake(mx_loop *l)
{
    const mx_wake *w;
    int n = mx_loop_step(l, 0.5, &w);
    for (int i = 0; i < n; i++)
        if (w[i].token == 0 && w[i].reason == MX_WAKE_SIGNAL) return 1;
    return 0;
}

int main(void)
{
    /* the embedding program's own handler */
    struct sigaction sa = {0};
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    mx_loop *a = mx_loop_new(), *b = mx_loop_new();
    CHECK(mx_loop_catch_signals(a) == 0);
    CHECK(mx_loop_catch_signals(b) == 0);
    /* freeing a loop that no longer owns the signals leaves them with b
     * (before: SIG_DFL, and this raise killed the process) */
    mx_loop_free(a);
    raise(SIGTERM);
    CHECK(got_signal_wake(b));
    CHECK(!own_handler_ran);

    /* the owner gives back the handler that was there before (before: SIG_DFL) */
    mx_loop_free(b);
    struct sigaction now;
    sigaction(SIGTERM, NULL, &now);
    CHECK(now.sa_handler == own_handler);
    raise(SIGTERM);
    CHECK(own_handler_ran);

    printf("test_signals: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
