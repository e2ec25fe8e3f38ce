/*
 * l_term.c - core.term: what the text report needs to know about the
 * terminal it writes to.
 *
 *   term.isatty(file | fd) -> boolean
 *   term.size(fd)          -> columns, rows | nil, "term", detail (TIOCGWINSZ)
 *   term.width(s)          -> display width of the UTF-8 string s in columns
 *
 * The width counts East Asian wide characters as 2 and combining marks and
 * other zero-width characters as 0 (wcwidth).  It is measured in the
 * C.UTF-8 locale, set for this thread only (uselocale) and restored, so it
 * neither depends on nor changes the user's locale: the report is UTF-8
 * whatever LC_ALL says.  A byte that is not valid UTF-8 counts 1 (the
 * report shows such bytes as \xNN escapes anyway); a non-printable
 * character counts 0.
 */
#define _GNU_SOURCE
#include "bindings.h"

#include <errno.h>
#include <stdio.h>
#include <locale.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <wchar.h>

/* isatty(file | fd) -> boolean.  A closed Lua file raises (a bug in the
 * caller); a descriptor that is not open is simply not a terminal. */
static int l_isatty(lua_State *L)
{
    int fd;
    if (lua_isinteger(L, 1)) {
        lua_Integer n = lua_tointeger(L, 1);
        if (n < 0 || n > 65535) return luaL_argerror(L, 1, "file descriptor out of range");
        fd = (int)n;
    } else {
        luaL_Stream *s = luaL_checkudata(L, 1, LUA_FILEHANDLE);
        if (s->closef == NULL) return luaL_argerror(L, 1, "the file is closed");
        fd = fileno(s->f);
    }
    lua_pushboolean(L, fd >= 0 && isatty(fd) == 1);
    return 1;
}

static int l_size(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) != 0) return mx_fail(L, "term", "%s", strerror(errno));
    if (ws.ws_col == 0) return mx_fail(L, "term", "the terminal reports 0 columns");
    lua_pushinteger(L, ws.ws_col);
    lua_pushinteger(L, ws.ws_row);
    return 2;
}

static locale_t utf8_locale(void)
{
    static locale_t loc = (locale_t)0;
    static int tried = 0;
    if (!tried) {
        tried = 1;
        loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    return loc;
}

/* Without a UTF-8 locale on the system, a rough measure: one column per
 * code point that does not continue a sequence. */
static lua_Integer rough_width(const char *s, size_t len)
{
    lua_Integer w = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) w++;
    return w;
}

static int l_width(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    locale_t loc = utf8_locale();
    if (loc == (locale_t)0) {
        lua_pushinteger(L, rough_width(s, len));
        return 1;
    }
    locale_t old = uselocale(loc);
    lua_Integer w = 0;
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t i = 0;
    while (i < len) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, s + i, len - i, &st);
        if (n == (size_t)-1 || n == (size_t)-2) { /* invalid or truncated: one byte, one column */
            memset(&st, 0, sizeof st);
            w++;
            i++;
            continue;
        }
        if (n == 0) n = 1; /* an embedded NUL */
        int cw = wcwidth(wc);
        if (cw > 0) w += cw;
        i += n;
    }
    uselocale(old);
    lua_pushinteger(L, w);
    return 1;
}

static const luaL_Reg term_funcs[] = {
    {"isatty", l_isatty},
    {"size", l_size},
    {"width", l_width},
    {NULL, NULL},
};

int mx_open_term(lua_State *L)
{
    luaL_newlib(L, term_funcs);
    return 1;
}
