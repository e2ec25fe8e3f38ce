/*
 * loop.c - epoll (level-triggered) + timer heap + wake-up queue.
 * See loop.h for the contract.  Nothing here blocks except epoll_wait.
 */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

enum { WAIT_NONE = 0, WAIT_FD, WAIT_TIMER, WAIT_EXT };

typedef struct {
    int kind;
    int fd;          /* WAIT_FD */
    size_t heap_idx; /* SIZE_MAX when not in the heap */
} slot_t;

typedef struct {
    int in_epoll;
    unsigned events; /* as registered */
    int keep;        /* MX_KEEP: a read interest stays registered after its wait */
    int token;       /* task waiting on this fd, or -1 */
    mx_io_cb cb;     /* C watcher, or NULL */
    void *ud;
} fdent_t;

typedef struct { double deadline; int token; } timer_t_;

typedef struct { mx_hook_deadline dl; mx_hook_tick tick; void *ud; } hook_t;

struct mx_loop {
    int epfd;
    slot_t *slots; size_t nslots;
    fdent_t *fds; size_t nfds;
    timer_t_ *heap; size_t heap_n, heap_cap;
    mx_wake *ready; size_t ready_n, ready_cap, returned_n;
    hook_t *hooks; size_t nhooks;
    size_t armed;
    int sigpipe[2];
};

void *(*mx_loop_realloc)(void *, size_t) = realloc;

double mx_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *p = mx_loop_realloc(*arr, n * elem);
    if (!p) return -ENOMEM;
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *arr = p;
    *cap = n;
    return 0;
}

static slot_t *slot_get(mx_loop *l, int token)
{
    if (token < 0) return NULL;
    size_t old = l->nslots;
    if (grow((void **)&l->slots, &l->nslots, (size_t)token + 1, sizeof *l->slots)) return NULL;
    for (size_t i = old; i < l->nslots; i++) l->slots[i].heap_idx = SIZE_MAX;
    return &l->slots[token];
}

static fdent_t *fd_get(mx_loop *l, int fd)
{
    if (fd < 0) return NULL;
    size_t old = l->nfds;
    if (grow((void **)&l->fds, &l->nfds, (size_t)fd + 1, sizeof *l->fds)) return NULL;
    for (size_t i = old; i < l->nfds; i++) l->fds[i].token = -1;
    return &l->fds[fd];
}

/* ---- timer heap (min-heap on deadline, slots remember their index) ---- */

static void heap_set(mx_loop *l, size_t i, timer_t_ t)
{
    l->heap[i] = t;
    l->slots[t.token].heap_idx = i;
}

static void heap_up(mx_loop *l, size_t i)
{
    timer_t_ t = l->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p].deadline <= t.deadline) break;
        heap_set(l, i, l->heap[p]);
        i = p;
    }
    heap_set(l, i, t);
}

static void heap_down(mx_loop *l, size_t i)
{
    timer_t_ t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->heap_n) break;
        if (c + 1 < l->heap_n && l->heap[c + 1].deadline < l->heap[c].deadline) c++;
        if (l->heap[c].deadline >= t.deadline) break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

static int heap_push(mx_loop *l, int token, double deadline)
{
    if (grow((void **)&l->heap, &l->heap_cap, l->heap_n + 1, sizeof *l->heap)) return -ENOMEM;
    l->heap[l->heap_n] = (timer_t_){deadline, token};
    heap_up(l, l->heap_n++);
    return 0;
}

static void heap_remove(mx_loop *l, size_t i)
{
    l->slots[l->heap[i].token].heap_idx = SIZE_MAX;
    l->heap_n--;
    if (i == l->heap_n) return;
    heap_set(l, i, l->heap[l->heap_n]);
    heap_up(l, i);
    heap_down(l, l->slots[l->heap[i].token].heap_idx);
}

/* ---- epoll registration ---- */

static int ep_set(mx_loop *l, int fd, fdent_t *e, unsigned events)
{
    if (events == 0) {
        if (e->in_epoll) epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
        e->in_epoll = 0;
        e->events = 0;
        return 0;
    }
    if (e->in_epoll && e->events == events) return 0;
    struct epoll_event ev = {0};
    ev.events = ((events & MX_READ) ? EPOLLIN : 0) | ((events & MX_WRITE) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    int r = epoll_ctl(l->epfd, e->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    /* the kernel drops a closed fd by itself: a number reused since is new */
    if (r < 0 && errno == ENOENT && e->in_epoll) r = epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (r < 0) return -errno;
    e->in_epoll = 1;
    e->events = events;
    return 0;
}

/* ---- waits ---- */

void mx_loop_disarm(mx_loop *l, int token)
{
    if (token < 0 || (size_t)token >= l->nslots) return;
    slot_t *s = &l->slots[token];
    if (s->kind == WAIT_NONE) return;
    if (s->heap_idx != SIZE_MAX) heap_remove(l, s->heap_idx);
    if (s->kind == WAIT_FD) {
        fdent_t *e = &l->fds[s->fd];
        e->token = -1;
        /* a kept read interest stays (parked): the same socket's next wait,
         * nearly always a read for the next reply, costs no epoll_ctl.  A
         * write interest fires at once on a socket with room, so it goes. */
        if (!(e->keep && e->events == MX_READ)) ep_set(l, s->fd, e, 0);
    }
    s->kind = WAIT_NONE;
    l->armed--;
}

static int arm(mx_loop *l, int token, int kind, double deadline)
{
    slot_t *s = slot_get(l, token);
    if (!s) return -EINVAL;
    mx_loop_disarm(l, token);
    /* room in the ready queue for every armed wait, this one and a signal */
    if (grow((void **)&l->ready, &l->ready_cap, l->ready_n + l->armed + 2, sizeof *l->ready)) return -ENOMEM;
    if (deadline >= 0 && heap_push(l, token, deadline) < 0) return -ENOMEM;
    s->kind = kind;
    l->armed++;
    return 0;
}

/* The queue never grows here: arm() reserved a place for every armed wait
 * (and one for a signal), so a wake-up cannot be lost to a failed realloc
 * after its wait was already disarmed (the task would sleep forever). */
static void push_ready(mx_loop *l, int token, int reason)
{
    if (l->ready_n >= l->ready_cap &&
        grow((void **)&l->ready, &l->ready_cap, l->ready_n + 1, sizeof *l->ready))
        return; /* only a signal wake-up can get here; the pipe stays readable */
    l->ready[l->ready_n++] = (mx_wake){token, reason};
}

static void fire(mx_loop *l, int token, int reason)
{
    mx_loop_disarm(l, token);
    push_ready(l, token, reason);
}

int mx_loop_wait_fd(mx_loop *l, int token, int fd, unsigned events, double deadline)
{
    fdent_t *e = fd_get(l, fd);
    int keep = (events & MX_KEEP) != 0;
    events &= MX_READ | MX_WRITE;
    if (!e || !events) return -EINVAL;
    if (e->cb) return -EBUSY;
    if (e->token >= 0 && e->token != token) return -EBUSY; /* one waiter per fd */
    int r = arm(l, token, WAIT_FD, deadline);
    if (r) return r;
    l->slots[token].fd = fd;
    if ((r = ep_set(l, fd, e, events)) < 0) {
        mx_loop_disarm(l, token);
        return r;
    }
    e->token = token;
    e->keep = keep;
    return 0;
}

int mx_loop_wait_timer(mx_loop *l, int token, double deadline)
{
    return arm(l, token, WAIT_TIMER, deadline < 0 ? 0 : deadline);
}

int mx_loop_wait_external(mx_loop *l, int token, double deadline)
{
    return arm(l, token, WAIT_EXT, deadline);
}

void mx_loop_wake(mx_loop *l, int token, int reason)
{
    if (token < 0 || (size_t)token >= l->nslots) return;
    if (l->slots[token].kind != WAIT_EXT) return;
    fire(l, token, reason);
}

void mx_loop_forget_fd(mx_loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nfds) return;
    fdent_t *e = &l->fds[fd];
    /* Wake, not just disarm: a task of its own waits on this fd (another
     * task closed the socket); dropping its wait would also drop its
     * deadline and strand it forever.  Its next call finds "closed". */
    if (e->token >= 0) fire(l, e->token, MX_WAKE_READY);
    ep_set(l, fd, e, 0);
    e->cb = NULL;
    e->ud = NULL;
    e->token = -1;
    e->keep = 0;
}

int mx_loop_watch(mx_loop *l, int fd, unsigned events, mx_io_cb cb, void *ud)
{
    fdent_t *e = fd_get(l, fd);
    if (!e) return -EINVAL;
    if (e->token >= 0) return -EBUSY;
    if (!events) {
        ep_set(l, fd, e, 0);
        e->cb = NULL;
        e->ud = NULL;
        return 0;
    }
    e->cb = cb;
    e->ud = ud;
    return ep_set(l, fd, e, events);
}

int mx_loop_add_hook(mx_loop *l, mx_hook_deadline dl, mx_hook_tick tick, void *ud)
{
    hook_t *h = realloc(l->hooks, (l->nhooks + 1) * sizeof *h);
    if (!h) return -ENOMEM;
    l->hooks = h;
    l->hooks[l->nhooks++] = (hook_t){dl, tick, ud};
    return 0;
}

void mx_loop_remove_hook(mx_loop *l, void *ud)
{
    for (size_t i = 0; i < l->nhooks; i++)
        if (l->hooks[i].ud == ud) {
            l->hooks[i] = l->hooks[--l->nhooks];
            return;
        }
}

size_t mx_loop_armed(const mx_loop *l) { return l->armed; }

/* ---- signals: a self-pipe, so a signal becomes an ordinary wake-up ---- */

/* The handler may only touch a volatile sig_atomic_t (C11 7.14.1.1).  One
 * loop at a time owns the signals: the last one that caught them. */
static volatile sig_atomic_t sig_write_fd = -1;
/* Signals caught so far: Lua that computes without waiting polls it from an
 * instruction hook (mxprobe.runtime.budget), since the pipe only wakes the
 * loop once Lua yields. */
static volatile sig_atomic_t sig_caught = 0;
static struct sigaction sig_saved_int, sig_saved_term; /* before the first catch */

long mx_loop_signals_caught(void) { return (long)sig_caught; }

/* core.watchdog's: interrupts Lua that computes (set once, before signals) */
static void (*volatile sig_hook)(void);
void mx_loop_set_signal_hook(void (*fn)(void)) { sig_hook = fn; }

static void on_signal(int sig)
{
    int saved = errno;
    sig_caught = sig_caught + 1;
    if (sig_hook) sig_hook();
    unsigned char b = (unsigned char)sig;
    if (sig_write_fd >= 0 && write(sig_write_fd, &b, 1) < 0) { /* pipe full: a wake is pending */ }
    errno = saved;
}

static void on_sigpipe_readable(mx_loop *l, int fd, unsigned events, void *ud)
{
    (void)events; (void)ud;
    unsigned char buf[64];
    while (read(fd, buf, sizeof buf) > 0) {}
    push_ready(l, 0, MX_WAKE_SIGNAL);
}

int mx_loop_catch_signals(mx_loop *l)
{
    if (l->sigpipe[0] >= 0) return 0;
    if (pipe2(l->sigpipe, O_NONBLOCK | O_CLOEXEC) < 0) return -errno;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    int first = sig_write_fd < 0, prev_fd = sig_write_fd;
    struct sigaction old_int, old_term;
    /* an embedding program's own handlers come back when we are done */
    if (sigaction(SIGINT, &sa, &old_int) < 0) goto fail;
    if (sigaction(SIGTERM, &sa, &old_term) < 0) {
        int e = errno;
        sigaction(SIGINT, &old_int, NULL);
        errno = e;
        goto fail;
    }
    if (first) {
        sig_saved_int = old_int;
        sig_saved_term = old_term;
    }
    sig_write_fd = l->sigpipe[1];
    int r = mx_loop_watch(l, l->sigpipe[0], MX_READ, on_sigpipe_readable, NULL);
    if (r < 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sig_write_fd = prev_fd;
        close(l->sigpipe[0]);
        close(l->sigpipe[1]);
        l->sigpipe[0] = l->sigpipe[1] = -1;
        return r;
    }
    return 0;
fail:;
    int e = errno;
    close(l->sigpipe[0]);
    close(l->sigpipe[1]);
    l->sigpipe[0] = l->sigpipe[1] = -1;
    return -e;
}

/* ---- life cycle and the step ---- */

mx_loop *mx_loop_new(void)
{
    mx_loop *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->sigpipe[0] = l->sigpipe[1] = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    return l;
}

void mx_loop_free(mx_loop *l)
{
    if (!l) return;
    if (l->sigpipe[0] >= 0) {
        /* only the owner gives the signals back: another live loop (a second
         * Lua state) that caught them later keeps them */
        if (sig_write_fd == l->sigpipe[1]) {
            /* if a handler cannot be given back it stays ours, and with
             * sig_write_fd -1 it does nothing: the signal is lost, not
             * written to a closed pipe */
            int bad = sigaction(SIGINT, &sig_saved_int, NULL) < 0;
            bad |= sigaction(SIGTERM, &sig_saved_term, NULL) < 0;
            (void)bad;
            sig_write_fd = -1;
        }
        close(l->sigpipe[0]);
        close(l->sigpipe[1]);
    }
    close(l->epfd);
    free(l->slots);
    free(l->fds);
    free(l->heap);
    free(l->ready);
    free(l->hooks);
    free(l);
}

static int any_watchers(const mx_loop *l)
{
    for (size_t i = 0; i < l->nfds; i++)
        if (l->fds[i].cb && l->fds[i].in_epoll && (int)i != l->sigpipe[0]) return 1;
    return 0;
}

int mx_loop_step(mx_loop *l, double max_wait, const mx_wake **out)
{
    /* Drop what the previous step returned; keep wakes queued since. */
    if (l->returned_n) {
        memmove(l->ready, l->ready + l->returned_n, (l->ready_n - l->returned_n) * sizeof *l->ready);
        l->ready_n -= l->returned_n;
        l->returned_n = 0;
    }

    double now = mx_now();
    double until = max_wait < 0 ? -1 : now + max_wait;
    if (l->heap_n && (until < 0 || l->heap[0].deadline < until)) until = l->heap[0].deadline;
    int hook_deadline = 0;
    for (size_t i = 0; i < l->nhooks; i++) {
        double d = l->hooks[i].dl ? l->hooks[i].dl(l->hooks[i].ud) : -1;
        if (d >= 0) {
            hook_deadline = 1;
            if (until < 0 || d < until) until = d;
        }
    }
    if (l->ready_n == 0 && l->armed == 0 && !hook_deadline && max_wait < 0 && !any_watchers(l)) {
        *out = l->ready;
        return 0;
    }

    int timeout_ms = -1;
    if (l->ready_n) timeout_ms = 0;
    else if (until >= 0) {
        double ms = ceil((until - now) * 1000.0);
        timeout_ms = ms <= 0 ? 0 : ms > 3600000 ? 3600000 : (int)ms;
    }

    struct epoll_event evs[256];
    int n = epoll_wait(l->epfd, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd < 0 || (size_t)fd >= l->nfds) continue;
        fdent_t *e = &l->fds[fd];
        unsigned got = 0;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) got |= MX_READ;
        if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) got |= MX_WRITE;
        if (e->cb) e->cb(l, fd, got, e->ud);
        else if (e->token >= 0) fire(l, e->token, MX_WAKE_READY);
        /* a parked read interest (MX_KEEP) with nobody waiting: data came
         * between two waits; level-triggered, it would come back at every
         * step, so it goes now and the next wait registers it again */
        else if (e->in_epoll) ep_set(l, fd, e, 0);
    }
    for (size_t i = 0; i < l->nhooks; i++)
        if (l->hooks[i].tick) l->hooks[i].tick(l->hooks[i].ud);

    now = mx_now();
    while (l->heap_n && l->heap[0].deadline <= now) {
        int token = l->heap[0].token;
        int kind = l->slots[token].kind;
        fire(l, token, kind == WAIT_TIMER ? MX_WAKE_READY : MX_WAKE_TIMEOUT);
    }
    l->returned_n = l->ready_n;
    *out = l->ready;
    return (int)l->ready_n;
}
