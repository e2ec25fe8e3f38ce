/*
 * loop.h - the event loop: level-triggered epoll, a timer heap on
 * CLOCK_MONOTONIC and a queue of wake-ups.
 *
 * The loop never runs Lua.  A Lua task that must wait registers one wait
 * under its integer token (a small, dense task id chosen by the Lua
 * scheduler); when the fd is ready, the deadline passes or some C code
 * (a c-ares callback) calls mx_loop_wake(), the token is queued.  The
 * scheduler collects the queue after mx_loop_step() and resumes the tasks.
 * Callbacks therefore never resume coroutines (GUIDE section 2).
 *
 * C components that own sockets (c-ares) register watchers with a callback
 * instead of a token, and hooks that bound the poll timeout and run after
 * each poll (c-ares timeouts).
 */
#ifndef MX_LOOP_H
#define MX_LOOP_H

#include <stddef.h>

typedef struct mx_loop mx_loop;

enum { MX_READ = 1, MX_WRITE = 2 };
/* With the events of mx_loop_wait_fd: the fd's owner calls
 * mx_loop_forget_fd before it closes the fd (core sockets do), so a read
 * interest may stay registered in epoll between two waits (no DEL, then
 * ADD, around every reply: two epoll_ctl calls per wait saved). */
enum { MX_KEEP = 0x100 };
enum { MX_WAKE_READY = 1, MX_WAKE_TIMEOUT = 2, MX_WAKE_SIGNAL = 3 };

typedef void (*mx_io_cb)(mx_loop *loop, int fd, unsigned events, void *ud);
/* Returns the absolute monotonic time before which the hook needs a call,
 * or a negative number for "no deadline". */
typedef double (*mx_hook_deadline)(void *ud);
typedef void (*mx_hook_tick)(void *ud);

typedef struct { int token; int reason; } mx_wake;

double mx_now(void);                    /* monotonic seconds */

mx_loop *mx_loop_new(void);
void mx_loop_free(mx_loop *loop);

/* Task waits: one per token.  deadline < 0 means none.  Return 0 or -errno. */
int mx_loop_wait_fd(mx_loop *loop, int token, int fd, unsigned events, double deadline);
int mx_loop_wait_timer(mx_loop *loop, int token, double deadline);
/* Wait until mx_loop_wake(token) or the deadline. */
int mx_loop_wait_external(mx_loop *loop, int token, double deadline);
/* Queue a wake-up for a token that waits (any kind); ignored otherwise. */
void mx_loop_wake(mx_loop *loop, int token, int reason);
/* Drop a token's wait without waking it (task cancelled or finished). */
void mx_loop_disarm(mx_loop *loop, int token);
/* Call before close(fd): removes the fd from epoll; a task waiting on it
 * is woken (MX_WAKE_READY) so that it finds the socket closed. */
void mx_loop_forget_fd(mx_loop *loop, int fd);

/* C watchers, for sockets owned by C libraries. events == 0 removes. */
int mx_loop_watch(mx_loop *loop, int fd, unsigned events, mx_io_cb cb, void *ud);
int mx_loop_add_hook(mx_loop *loop, mx_hook_deadline dl, mx_hook_tick tick, void *ud);
void mx_loop_remove_hook(mx_loop *loop, void *ud);

/* SIGINT/SIGTERM become a wake-up with token 0 and MX_WAKE_SIGNAL. */
int mx_loop_catch_signals(mx_loop *loop);
/* How many SIGINT/SIGTERM the handler has caught (any loop), for polling
 * from code that cannot wait for the wake-up. */
long mx_loop_signals_caught(void);
/* fn() is called from the SIGINT/SIGTERM handler too (async-signal-safe
 * code only: core.watchdog arms its hook there) */
void mx_loop_set_signal_hook(void (*fn)(void));

/* Wait at most max_wait seconds (< 0: until something happens), dispatch
 * C watchers and hooks, expire timers.  The queued wake-ups are returned in
 * *out (valid until the next step); the count is the return value.
 * Returns 0 at once when nothing at all is armed (nothing to wait for). */
int mx_loop_step(mx_loop *loop, double max_wait, const mx_wake **out);

/* The allocator of the loop's arrays (realloc); tests replace it to make
 * allocations fail. */
extern void *(*mx_loop_realloc)(void *, size_t);

/* How many task waits are armed (for the scheduler's deadlock check). */
size_t mx_loop_armed(const mx_loop *loop);

#endif
