/* test_argv.c - a long command line reaches the Lua side whole.
 *
 * core/main.c used to push every argument onto the Lua stack without
 * lua_checkstack: with more than about 55 arguments it wrote past the
 * stack (heap corruption, an abort under the sanitizers).  This runs the
 * built mxprobe with 1000 arguments of an invalid option form and expects
 * a clean exit with a message.  Nothing is sent anywhere: the command
 * line is refused before any probe. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        checks++;                                                                 \
        if (!(cond)) {                                                            \
            failures++;                                                           \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
        }                                                                         \
    } while (0)

/* Run mxprobe with nargs arguments (first, then rest repeated); stderr into err. */
static int run(int nargs, const char *first, const char *rest, char *err, size_t errlen)
{
    char **argv = calloc((size_t)nargs + 2, sizeof *argv);
    argv[0] = MXPROBE_BUILD_DIR "/mxprobe";
    argv[1] = (char *)first;
    for (int i = 2; i <= nargs; i++) argv[i] = (char *)rest;
    int p[2];
    if (pipe(p) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(p[0], err + got, errlen - 1 - got)) > 0) {
        got += (size_t)r;
        if (got >= errlen - 1) break;
    }
    err[got] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    free(argv);
    return status;
}

int main(void)
{
    char err[8192];
    /* an unknown option first, then 999 more of them */
    int st = run(1000, "--no-such-option", "--no-such-option", err, sizeof err);
    CHECK(WIFEXITED(st), "mxprobe did not exit normally (signal %d): %s", WIFSIGNALED(st) ? WTERMSIG(st) : 0, err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 127, "exit status %d", WEXITSTATUS(st));
    CHECK(strstr(err, "unknown option '--no-such-option'") != NULL, "no message on stderr: %s", err);
    CHECK(strstr(err, "stack") == NULL && strstr(err, "ERROR") == NULL, "a crash report on stderr: %s", err);

    /* a script sees all its arguments */
    char script[] = "/tmp/test_argv_XXXXXX.lua";
    int fd = mkstemps(script, 4);
    CHECK(fd >= 0, "mkstemps");
    if (fd >= 0) {
        const char *code = "local n = select('#', ...)\n"
                           "io.stderr:write('args=', n, ' last=', tostring(select(n, ...)), ' arg=', #arg, '\\n')\n"
                           "return n == 1000 and 0 or 1\n";
        if (write(fd, code, strlen(code)) < 0) perror("write");
        close(fd);
        st = run(1001, script, "x", err, sizeof err);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "script exit status %d: %s", WEXITSTATUS(st), err);
        CHECK(strstr(err, "args=1000 last=x arg=1000") != NULL, "script saw: %s", err);
        unlink(script);
    }

    printf("test_argv: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
