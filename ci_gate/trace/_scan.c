/*
 * ci_gate.trace._scan: the parser's line filter in C (optional; see parser.py).
 *
 * Lines(parser, chunks) reads a trace as byte chunks (any split points) and
 * iterates over the lines TraceParser.parse() must read itself, decoded as a
 * text file opened with encoding="utf-8", errors="surrogateescape",
 * newline="\n" would give them. The other lines it accounts for itself, with
 * exactly the effect parse()'s Python fast path would have had on them:
 *
 *   - a complete call nobody selected: counted in parser.stats.tally;
 *   - "<... NAME resumed>" under a pid whose pending half is NAME: joined
 *     (the half leaves parser._pending), counted, counted as split;
 *   - "NAME(... <unfinished ...>" under a pid with nothing pending: stored in
 *     parser._pending as the Python code stores it;
 *   - with parser.select.quiet set (the collector's offer, see Quiet in
 *     parser.py): a selected path-taking call is counted and its resolution
 *     class added to quiet.counts, and a selected close() of an fd no table in
 *     quiet.fd_tables holds is counted, instead of becoming an event.
 *
 * The rule that keeps this exact: a line is taken only when the Python code
 * would provably read it the same way; anything else (another prefix form, a
 * return that is not a plain number, hex, "N<decoration>", "-N ENAME (text)"
 * or "N (text)", a call line whose parentheses do not pair, arguments beyond
 * the simple shapes, non-ASCII bytes where Python's str methods could judge
 * differently, a selected call, a line naming a needle, a busy parser) goes to
 * Python unchanged. Lines are read in order and the parser's state is read
 * again each time Python has had a line, so the two never disagree on what
 * came before. tests/test_trace_speedups.py proves both paths equal on the
 * corpus, real traces and fuzzed input.
 *
 * Every read is bounded by the line's length; the buffer grows with the
 * longest line, as a text file's readline would.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <limits.h>
#include <string.h>

#define NAME_CACHE 256
#define NAME_CACHE_MAX 40
#define MAX_ARGS 4

typedef struct {
    Py_ssize_t len;
    char text[NAME_CACHE_MAX];
    PyObject *str;
} NameSlot;

typedef struct {
    PyObject_HEAD
    PyObject *parser;
    PyObject *chunks;    /* iterator of bytes */
    char *data;
    Py_ssize_t len, cap, pos, scanned;
    int eof;
    Py_ssize_t lineno;   /* lines passed so far (taken or handed over) */
    Py_ssize_t split;    /* split calls joined here */
    NameSlot *names;     /* interned syscall names, by their bytes */
    PyObject *needles_seen; /* the needles tuple last encoded */
    PyObject *needles_b;    /* list of its bytes, or NULL when one cannot be encoded */
} Lines;

/* What Lines reads from the parser each time Python has had a line. */
typedef struct {
    int busy, ts_mode, unprefixed_ok;
    long default_pid;
    PyObject *pending, *tally, *names, *needles;  /* borrowed from the refs below */
    Py_ssize_t n_needles;
    /* quiet (all NULL when the collector offered nothing) */
    PyObject *classify, *counts, *template, *keys, *fd_calls, *fd_tables;
    PyObject *refs[16];
    int nrefs;
} State;

static PyObject *str_incomplete, *str_timestamps, *str_prefixed_seen, *str_mixed,
    *str_default_pid, *str_pending, *str_stats, *str_tally, *str_select, *str_names,
    *str_needles, *str_quiet, *str_classify, *str_counts, *str_template, *str_keys,
    *str_fd_calls, *str_fd_tables;

/* -- small byte helpers ---------------------------------------------------- */

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_lower_(unsigned char c) { return (c >= 'a' && c <= 'z') || c == '_'; }
static inline int is_name(unsigned char c) { return is_lower_(c) || is_digit(c); }
static inline int is_hex(unsigned char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

enum { NO = 0, YES = 1, UNSURE = 2 };

/* str.isdigit() of the text: YES, NO, or UNSURE when it has non-ASCII
 * characters and no ASCII non-digit (Python counts other scripts' digits). */
static int digits3(const unsigned char *s, Py_ssize_t n) {
    int wide = 0;
    if (n <= 0)
        return NO;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] >= 0x80)
            wide = 1;
        else if (!is_digit(s[i]))
            return NO;
    }
    return wide ? UNSURE : YES;
}

/* A decimal value as parser._number reads it; 0 when it cannot say (leading
 * zero: octal there; too long). */
static int decimal(const unsigned char *s, Py_ssize_t n, long long *out) {
    long long v = 0;
    if (n <= 0 || n > 18 || (n > 1 && s[0] == '0'))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* -- the return ------------------------------------------------------------ */

typedef struct {
    int error;       /* the call failed (an errno) */
    int has_value;
    long long value; /* the return value, when has_value */
} Ret;

/* "-?DIGITS" at s; its end, or -1. */
static Py_ssize_t signed_digits(const unsigned char *s, Py_ssize_t n, Ret *r) {
    Py_ssize_t i = 0, d;
    long long v = 0;
    if (i < n && s[i] == '-')
        i++;
    d = i;
    while (i < n && is_digit(s[i]))
        i++;
    if (i == d)
        return -1;
    if (i < n && s[i] >= 0x80)
        return -1; /* \d would go on into other scripts' digits */
    r->has_value = decimal(s + d, i - d, &v);
    r->value = s[0] == '-' ? -v : v;
    return i;
}

/* The forms of a return parse_return reads the same way _quiet_return and
 * _fast_call do (s has no duration): 1 and *r, or 0 for Python to read. */
static int plain_return(const unsigned char *s, Py_ssize_t n, Ret *r) {
    Py_ssize_t i;
    memset(r, 0, sizeof *r);
    switch (digits3(s, n)) {
    case YES:
        r->has_value = decimal(s, n, &r->value);
        return 1;
    case UNSURE:
        return 0;
    }
    if (n > 2 && s[0] == '0' && s[1] == 'x') {
        unsigned long long v = 0; /* wraps harmlessly past 16 digits; not used then */
        for (i = 2; i < n && is_hex(s[i]); i++)
            v = v * 16 + (unsigned)(is_digit(s[i]) ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10);
        r->has_value = i - 2 <= 15;
        r->value = r->has_value ? (long long)v : 0;
        if (i == n) /* int(ret, 16) */
            return 1;
        /* "0x8002 (flags O_RDWR)" */
        if (s[i] != ' ')
            return 0;
    } else {
        i = signed_digits(s, n, r);
        if (i < 0 || i >= n)
            return 0;
        /* "3</path>" (here after a -T duration was cut off): the value and a
         * decoration running to the end, `(?:<[^\n]*>)?$`. */
        if (s[i] == '<')
            return s[n - 1] == '>';
        if (s[i] != ' ')
            return 0;
    }
    while (i < n && s[i] == ' ')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '(') {
        /* "N (Timeout)": `(?:\s+\(.*\))?$` with no errno before it. */
        return s[n - 1] == ')' && n - 1 > i;
    }
    /* "-1 ENOENT (No such file or directory)", single spaces: an errno name,
     * then its text in parentheses that hold no parentheses, to the end. */
    if (s[i] != 'E')
        return 0;
    Py_ssize_t e = i + 1;
    while (e < n && ((s[e] >= 'A' && s[e] <= 'Z') || is_digit(s[e]) || s[e] == '_'))
        e++;
    if (e == i + 1 || e + 2 >= n || s[e] != ' ' || s[e + 1] != '(' || s[n - 1] != ')')
        return 0;
    for (Py_ssize_t k = e + 2; k < n - 1; k++)
        if (s[k] == '(' || s[k] == ')')
            return 0;
    r->error = 1;
    return 1;
}

/* A -T duration as parser._DURATION reads it: DIGITS[.DIGITS]. */
static int strict_duration(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && is_digit(s[i]))
        i++;
    if (i == 0)
        return 0;
    if (i == n)
        return 1;
    if (s[i] != '.' || i + 1 == n)
        return 0;
    for (i++; i < n; i++)
        if (!is_digit(s[i]))
            return 0;
    return 1;
}

/* The return text after " = ", as _quiet_return then _fast_call read it. */
static int read_return(const unsigned char *s, Py_ssize_t n, Ret *r) {
    memset(r, 0, sizeof *r);
    if (n <= 0)
        return 0;
    if (s[n - 1] == '>') {
        Py_ssize_t i = -1, lt = -1;
        for (Py_ssize_t k = n - 2; k >= 0; k--)
            if (s[k] == ' ' && s[k + 1] == '<') {
                i = k;
                break;
            }
        if (i > 0) {
            /* ret[i+2:-1].replace(".", "", 1).isdigit() */
            const unsigned char *d = s + i + 2;
            Py_ssize_t dn = n - 1 - (i + 2), dot = -1;
            int wide = 0, other = 0, digits = 0;
            for (Py_ssize_t k = 0; k < dn; k++) {
                if (d[k] >= 0x80)
                    wide = 1;
                else if (is_digit(d[k]))
                    digits = 1;
                else if (d[k] == '.' && dot < 0)
                    dot = k;
                else
                    other = 1;
            }
            if (!other && wide)
                return 0;
            if (!other && digits) /* a duration for Python */
                return strict_duration(d, dn) ? plain_return(s, i, r) : 0;
        }
        for (Py_ssize_t k = 0; k < n; k++)
            if (s[k] == '<') {
                lt = k;
                break;
            }
        if (lt > 0) {
            int dg = digits3(s, lt);
            if (dg == YES) { /* 3</path>: an fd and its -y decoration */
                r->has_value = decimal(s, lt, &r->value);
                return 1;
            }
        }
        return 0;
    }
    return plain_return(s, n, r);
}

/* The call's closing parenthesis and return: parser._tail. */
static int find_tail(const unsigned char *s, Py_ssize_t start, Py_ssize_t nl,
                     Py_ssize_t *close, Py_ssize_t *ret) {
    Py_ssize_t bound = nl, e;
    for (;;) {
        e = -1;
        for (Py_ssize_t k = bound - 3; k >= start; k--)
            if (s[k] == ' ' && s[k + 1] == '=' && s[k + 2] == ' ') {
                e = k;
                break;
            }
        if (e <= start)
            return 0;
        if (s[e - 1] == ')') {
            *close = e - 1;
            *ret = e + 3;
            return 1;
        }
        Py_ssize_t k = e;
        while (k > start && s[k - 1] == ' ')
            k--;
        k--;
        if (k >= start && s[k] == ')') {
            *close = k;
            *ret = e + 3;
            return 1;
        }
        bound = e + 2;
    }
}

/* parser._parens_pair(raw, close, begin) */
static int parens_pair(const unsigned char *s, Py_ssize_t close, Py_ssize_t begin) {
    Py_ssize_t start = begin, open = 0, shut = 0;
    for (Py_ssize_t k = close - 1; k >= begin; k--)
        if (s[k] == '"') {
            start = k + 1;
            break;
        }
    for (Py_ssize_t k = start; k < close; k++) {
        if (s[k] == '(')
            open++;
        else if (s[k] == ')')
            shut++;
    }
    return open <= shut;
}

/* -- leading arguments (args.split_args with a limit of 1 to 4) ---------------
 *
 * The shapes args._LEADING reads: each argument a run of strings, -y
 * decorations (one level of nesting), words and inner blanks, separated by
 * commas. 1 with the arguments' bounds, 0 when Python would read them
 * otherwise (or could: control characters, non-ASCII outside strings and
 * decorations, where Python's \s and word classes are wider than ASCII). */
static int word_byte(unsigned char c) {
    if (c <= 0x20 || c >= 0x7f)
        return 0;
    return !strchr("\",()[]{}<>/", c);
}

static int leading_args(const unsigned char *t, Py_ssize_t m, int limit, Py_ssize_t *starts,
                        Py_ssize_t *ends, int *nargs) {
    Py_ssize_t p = 0;
    for (int a = 0; a < limit; a++) {
        if (a > 0)
            p++; /* the comma */
        while (p < m && t[p] == ' ')
            p++;
        Py_ssize_t start = p;
        for (;;) {
            if (p >= m)
                break;
            unsigned char c = t[p];
            if (c == '"') {
                p++;
                for (;;) {
                    if (p >= m)
                        return 0;
                    if (t[p] == '"')
                        break;
                    if (t[p] == '\\') {
                        if (p + 1 >= m || t[p + 1] == '\n')
                            return 0;
                        p += 2;
                    } else {
                        p++;
                    }
                }
                p++;
                if (p + 3 <= m && t[p] == '.' && t[p + 1] == '.' && t[p + 2] == '.')
                    p += 3;
            } else if (c == '<') {
                p++;
                while (p < m && t[p] != '<' && t[p] != '>')
                    p++;
                while (p < m && t[p] == '<') {
                    p++;
                    while (p < m && t[p] != '<' && t[p] != '>')
                        p++;
                    if (p >= m || t[p] != '>')
                        return 0;
                    p++;
                    while (p < m && t[p] != '<' && t[p] != '>')
                        p++;
                }
                if (p >= m || t[p] != '>')
                    return 0;
                p++;
            } else if (c == ' ') {
                Py_ssize_t q = p;
                while (q < m && t[q] == ' ')
                    q++;
                if (q >= m || t[q] == ',')
                    break;
                if (!word_byte(t[q]) && t[q] != '"' && t[q] != '<')
                    return 0;
                p = q;
            } else if (word_byte(c)) {
                while (p < m && word_byte(t[p]))
                    p++;
            } else if (c < 0x20 || c >= 0x7f) {
                return 0;
            } else {
                break;
            }
        }
        Py_ssize_t end = p;
        if (end == start)
            return 0;
        while (p < m && t[p] == ' ')
            p++;
        starts[a] = start;
        ends[a] = end;
        if (p >= m) {
            *nargs = a + 1;
            return 1;
        }
        if (t[p] != ',')
            return 0;
    }
    *nargs = limit;
    return 1;
}

static int arg_is(const unsigned char *t, Py_ssize_t s, Py_ssize_t e, const char *what) {
    Py_ssize_t n = (Py_ssize_t)strlen(what);
    return e - s == n && memcmp(t + s, what, n) == 0;
}

static int arg_starts(const unsigned char *t, Py_ssize_t s, Py_ssize_t e, const char *what) {
    Py_ssize_t n = (Py_ssize_t)strlen(what);
    return e - s >= n && memcmp(t + s, what, n) == 0;
}

enum { PATH_BASED = 0, FD_BASED = 1, DIRFD_RELATIVE = 2 };
static const int RANK[3] = {2, 0, 1}; /* pathcalls.worst */

/* pathcalls.classify_pair on the printed arguments; -1 when the path is a pointer
   (-e raw=...), which the collector counts as a path it cannot see. */
static int classify_pair(const unsigned char *t, const Py_ssize_t *st, const Py_ssize_t *en,
                         int nargs, long d, long p) {
    int has_d = d >= 0 && d < nargs, has_p = p >= 0 && p < nargs;
    if (has_p && arg_starts(t, st[p], en[p], "0x"))
        return -1;
    if (has_d && (!has_p || arg_is(t, st[p], en[p], "NULL") || arg_is(t, st[p], en[p], "\"\"")))
        return FD_BASED;
    /* An absolute path: "/..." or, hex-escaped under -x/-xx, "\x2f...". */
    if (has_p && (arg_starts(t, st[p], en[p], "\"/") || arg_starts(t, st[p], en[p], "\"\\x2f")))
        return PATH_BASED;
    if (!has_d || arg_starts(t, st[d], en[d], "AT_FDCWD") || arg_starts(t, st[d], en[d], "-100") ||
        arg_is(t, st[d], en[d], "0xffffff9c") || arg_is(t, st[d], en[d], "0xffffffffffffff9c"))
        return PATH_BASED;
    return DIRFD_RELATIVE;
}

/* -- the Lines object -------------------------------------------------------- */

static void state_release(State *st) {
    for (int i = 0; i < st->nrefs; i++)
        Py_DECREF(st->refs[i]);
    st->nrefs = 0;
}

static PyObject *keep(State *st, PyObject *o) {
    /* o is a new reference (or NULL); st keeps it until state_release. */
    if (o != NULL) {
        assert(st->nrefs < (int)(sizeof st->refs / sizeof st->refs[0]));
        st->refs[st->nrefs++] = o;
    }
    return o;
}

static int attr_true(PyObject *obj, PyObject *name, int *out) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    *out = PyObject_IsTrue(v);
    Py_DECREF(v);
    return *out < 0 ? -1 : 0;
}

static int needles_update(Lines *self, PyObject *needles) {
    if (self->needles_seen == needles)
        return 0;
    Py_CLEAR(self->needles_b);
    Py_XSETREF(self->needles_seen, Py_NewRef(needles));
    Py_ssize_t n = PyTuple_GET_SIZE(needles);
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyTuple_GET_ITEM(needles, i);
        PyObject *b = PyUnicode_Check(s) ? PyUnicode_AsEncodedString(s, "utf-8", "surrogateescape")
                                         : NULL;
        if (b == NULL) {
            /* Not something a line's bytes can be searched for: Python reads every line. */
            PyErr_Clear();
            Py_DECREF(list);
            return 0;
        }
        PyList_SET_ITEM(list, i, b);
    }
    self->needles_b = list;
    return 0;
}

/* Read the parser's state; 0, or -1 with an exception. */
static int state_read(Lines *self, State *st) {
    PyObject *p = self->parser, *v, *stats, *sel, *quiet;
    memset(st, 0, sizeof *st);
    v = PyObject_GetAttr(p, str_incomplete);
    if (v == NULL)
        return -1;
    st->busy = v != Py_None;
    Py_DECREF(v);
    if (st->busy)
        return 0;
    int prefixed, mixed;
    if (attr_true(p, str_timestamps, &st->ts_mode) < 0 ||
        attr_true(p, str_prefixed_seen, &prefixed) < 0 || attr_true(p, str_mixed, &mixed) < 0)
        return -1;
    st->unprefixed_ok = !prefixed && !mixed;
    v = PyObject_GetAttr(p, str_default_pid);
    if (v == NULL)
        return -1;
    st->default_pid = PyLong_AsLong(v);
    Py_DECREF(v);
    if (st->default_pid == -1 && PyErr_Occurred())
        return -1;
    st->pending = keep(st, PyObject_GetAttr(p, str_pending));
    stats = keep(st, PyObject_GetAttr(p, str_stats));
    if (st->pending == NULL || stats == NULL)
        return -1;
    st->tally = keep(st, PyObject_GetAttr(stats, str_tally));
    sel = keep(st, PyObject_GetAttr(p, str_select));
    if (st->tally == NULL || sel == NULL)
        return -1;
    if (!PyDict_Check(st->pending) || !PyDict_Check(st->tally)) {
        PyErr_SetString(PyExc_TypeError, "_scan.Lines: the parser's pending and tally must be dicts");
        return -1;
    }
    st->names = keep(st, PyObject_GetAttr(sel, str_names));
    st->needles = keep(st, PyObject_GetAttr(sel, str_needles));
    quiet = keep(st, PyObject_GetAttr(sel, str_quiet));
    if (st->names == NULL || st->needles == NULL || quiet == NULL)
        return -1;
    if (st->names == Py_None) {
        st->busy = 1; /* every call is an event: nothing to take */
        return 0;
    }
    if (!PyAnySet_Check(st->names) || !PyTuple_Check(st->needles)) {
        PyErr_SetString(PyExc_TypeError, "_scan.Lines: select.names must be a set, needles a tuple");
        return -1;
    }
    if (needles_update(self, st->needles) < 0)
        return -1;
    st->n_needles = PyTuple_GET_SIZE(st->needles);
    if (st->n_needles && self->needles_b == NULL) {
        st->busy = 1;
        return 0;
    }
    if (quiet != Py_None) {
        st->classify = keep(st, PyObject_GetAttr(quiet, str_classify));
        st->counts = keep(st, PyObject_GetAttr(quiet, str_counts));
        st->template = keep(st, PyObject_GetAttr(quiet, str_template));
        st->keys = keep(st, PyObject_GetAttr(quiet, str_keys));
        st->fd_calls = keep(st, PyObject_GetAttr(quiet, str_fd_calls));
        st->fd_tables = keep(st, PyObject_GetAttr(quiet, str_fd_tables));
        if (st->classify == NULL || st->counts == NULL || st->template == NULL ||
            st->keys == NULL || st->fd_calls == NULL || st->fd_tables == NULL)
            return -1;
        if (!PyDict_Check(st->classify) || !PyDict_Check(st->counts) ||
            !PyDict_Check(st->template) || !PyTuple_Check(st->keys) ||
            PyTuple_GET_SIZE(st->keys) != 3 || !PyAnySet_Check(st->fd_calls) ||
            !PyDict_Check(st->fd_tables)) {
            PyErr_SetString(PyExc_TypeError, "_scan.Lines: select.quiet has the wrong shape");
            return -1;
        }
    }
    return 0;
}

/* The interned str of a syscall name (new reference). */
static PyObject *name_str(Lines *self, const unsigned char *s, Py_ssize_t n) {
    if (n >= NAME_CACHE_MAX)
        return PyUnicode_DecodeASCII((const char *)s, n, NULL);
    unsigned h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    NameSlot *slot = &self->names[h % NAME_CACHE];
    if (slot->str != NULL && slot->len == n && memcmp(slot->text, s, n) == 0)
        return Py_NewRef(slot->str);
    PyObject *str = PyUnicode_DecodeASCII((const char *)s, n, NULL);
    if (str == NULL)
        return NULL;
    PyUnicode_InternInPlace(&str);
    Py_XSETREF(slot->str, Py_NewRef(str));
    slot->len = n;
    memcpy(slot->text, s, n);
    return str;
}

static int contains(PyObject *set, PyObject *key) { return PySet_Contains(set, key); }

/* Whether one of the needles is in the line (bytes) or, with `also`, in that str. */
static int has_needle(Lines *self, State *st, const unsigned char *s, Py_ssize_t n,
                      PyObject *also) {
    for (Py_ssize_t i = 0; i < st->n_needles; i++) {
        PyObject *b = PyList_GET_ITEM(self->needles_b, i);
        Py_ssize_t bn = PyBytes_GET_SIZE(b);
        if (bn == 0 || memmem(s, n, PyBytes_AS_STRING(b), bn) != NULL)
            return 1;
        if (also != NULL) {
            int r = PySequence_Contains(also, PyTuple_GET_ITEM(st->needles, i));
            if (r != 0)
                return r;
        }
    }
    return 0;
}

/* list[i] += 1 */
static int bump(PyObject *list, Py_ssize_t i) {
    PyObject *old = PyList_GET_ITEM(list, i);
    long long v = PyLong_AsLongLong(old);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v == LLONG_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a count reached LLONG_MAX");
        return -1;
    }
    PyObject *new = PyLong_FromLongLong(v + 1);
    if (new == NULL)
        return -1;
    PyList_SET_ITEM(list, i, new);
    Py_DECREF(old);
    return 0;
}

/* tally[name] (created as [0, 0, 0]) += [1, 1, failed] */
static int count(State *st, PyObject *name, int failed) {
    PyObject *t = PyDict_GetItemWithError(st->tally, name);
    if (t == NULL) {
        if (PyErr_Occurred())
            return -1;
        t = Py_BuildValue("[iii]", 0, 0, 0);
        if (t == NULL)
            return -1;
        int r = PyDict_SetItem(st->tally, name, t);
        Py_DECREF(t);
        if (r < 0)
            return -1;
    }
    if (!PyList_CheckExact(t) || PyList_GET_SIZE(t) != 3) {
        PyErr_SetString(PyExc_TypeError, "_scan.Lines: a tally entry is not a list of 3");
        return -1;
    }
    if (bump(t, 0) < 0 || bump(t, 1) < 0 || (failed && bump(t, 2) < 0))
        return -1;
    return 0;
}

/* Whether fd is in the fd table of pid: then the collector must see the call. */
static int fd_watched(State *st, long pid, long long fd) {
    PyObject *key = PyLong_FromLong(pid), *table, *f;
    if (key == NULL)
        return -1;
    table = PyDict_GetItemWithError(st->fd_tables, key);
    Py_DECREF(key);
    if (table == NULL)
        return PyErr_Occurred() ? -1 : 0;
    f = PyLong_FromLongLong(fd);
    if (f == NULL)
        return -1;
    int r = PySequence_Contains(table, f);
    Py_DECREF(f);
    return r;
}

/* A selected call the collector lets go quietly (Quiet in parser.py): 1 when
 * taken (counted, classified), 0 for Python, -1 on error. Nothing changes
 * before the answer is known. */
static int take_quiet(State *st, PyObject *name, const unsigned char *args, Py_ssize_t nargs_text,
                      long pid, const Ret *ret) {
    PyObject *spec;
    const unsigned char *s = args;
    Py_ssize_t begin = 0, close = nargs_text;
    if (pid < 0) {
        /* _fast_call asks _unprefixed_pid(), which may change state. */
        if (!st->unprefixed_ok)
            return 0;
        pid = st->default_pid;
    }
    int r = contains(st->fd_calls, name);
    if (r < 0)
        return -1;
    if (r) {
        /* close(FD): collector._close closes FD in the task's table. */
        Py_ssize_t k = begin;
        long long fd = 0;
        while (k < close && is_digit(s[k]) && k - begin < 9)
            fd = fd * 10 + (s[k++] - '0');
        if (k == begin || (k < close && s[k] != '<'))
            return 0;
        r = fd_watched(st, pid, fd);
        if (r != 0)
            return r < 0 ? -1 : 0;
        return count(st, name, ret->error) < 0 ? -1 : 1;
    }
    spec = PyDict_GetItemWithError(st->classify, name);
    if (spec == NULL)
        return PyErr_Occurred() ? -1 : 0;
    /* (limit, ((dirfd or -1, path), ...), fd_only, opens) */
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 4 ||
        !PyTuple_Check(PyTuple_GET_ITEM(spec, 1))) {
        PyErr_SetString(PyExc_TypeError, "_scan.Lines: a classify entry has the wrong shape");
        return -1;
    }
    long limit = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    PyObject *pairs = PyTuple_GET_ITEM(spec, 1);
    int fd_only = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 2));
    int opens = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 3));
    if ((limit == -1 && PyErr_Occurred()) || fd_only < 0 || opens < 0)
        return -1;
    if (limit < 1 || limit > MAX_ARGS)
        return 0;
    int cls = FD_BASED;
    if (!fd_only) {
        Py_ssize_t st_[MAX_ARGS], en[MAX_ARGS];
        int nargs = 0;
        if (!leading_args(s + begin, close - begin, (int)limit, st_, en, &nargs))
            return 0;
        int worst = -1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(pairs); i++) {
            PyObject *pair = PyTuple_GET_ITEM(pairs, i);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "_scan.Lines: a pair has the wrong shape");
                return -1;
            }
            long d = PyLong_AsLong(PyTuple_GET_ITEM(pair, 0));
            long p = PyLong_AsLong(PyTuple_GET_ITEM(pair, 1));
            if (PyErr_Occurred())
                return -1;
            int c = classify_pair(s + begin, st_, en, nargs, d, p);
            if (c < 0)
                return 0;
            if (worst < 0 || RANK[c] > RANK[worst])
                worst = c;
        }
        if (worst < 0)
            return 0;
        cls = worst;
    }
    if (opens) {
        /* collector._opened: a returned fd >= 0 is closed in the task's table. */
        if (!ret->has_value)
            return 0;
        if (ret->value >= 0) {
            r = fd_watched(st, pid, ret->value);
            if (r != 0)
                return r < 0 ? -1 : 0;
        }
    }
    if (count(st, name, ret->error) < 0)
        return -1;
    PyObject *counter = PyDict_GetItemWithError(st->counts, name);
    if (counter == NULL) {
        if (PyErr_Occurred())
            return -1;
        counter = PyDict_Copy(st->template);
        if (counter == NULL)
            return -1;
        r = PyDict_SetItem(st->counts, name, counter);
        Py_DECREF(counter);
        if (r < 0)
            return -1;
    }
    if (!PyDict_Check(counter)) {
        PyErr_SetString(PyExc_TypeError, "quiet.counts values must be dicts");
        return -1;
    }
    PyObject *key = PyTuple_GET_ITEM(st->keys, cls);
    PyObject *old = PyDict_GetItemWithError(counter, key);
    if (old == NULL && PyErr_Occurred())
        return -1;
    long long v = old == NULL ? 0 : PyLong_AsLongLong(old);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v == LLONG_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a count reached LLONG_MAX");
        return -1;
    }
    PyObject *new = PyLong_FromLongLong(v + 1);
    if (new == NULL)
        return -1;
    r = PyDict_SetItem(counter, key, new);
    Py_DECREF(new);
    return r < 0 ? -1 : 1;
}

/* take_quiet for a resumed half: the pending half's text (a str) and the
 * rest of the arguments (bytes), joined as the Python code joins them. */
static int take_quiet_joined(State *st, PyObject *name, PyObject *head, const unsigned char *rest,
                             Py_ssize_t nrest, long pid, const Ret *ret) {
    PyObject *encoded = NULL;
    const char *h;
    Py_ssize_t nh;
    if (!PyUnicode_Check(head))
        return 0;
    if (PyUnicode_IS_ASCII(head)) {
        h = (const char *)PyUnicode_DATA(head);
        nh = PyUnicode_GET_LENGTH(head);
    } else {
        /* The text was decoded from the trace's bytes with surrogateescape;
         * encoding it back gives those bytes. */
        encoded = PyUnicode_AsEncodedString(head, "utf-8", "surrogateescape");
        if (encoded == NULL) {
            PyErr_Clear();
            return 0;
        }
        h = PyBytes_AS_STRING(encoded);
        nh = PyBytes_GET_SIZE(encoded);
    }
    unsigned char small[512], *buf = small;
    if (nh + nrest > (Py_ssize_t)sizeof small) {
        buf = PyMem_Malloc(nh + nrest);
        if (buf == NULL) {
            Py_XDECREF(encoded);
            PyErr_NoMemory();
            return -1;
        }
    }
    memcpy(buf, h, nh);
    memcpy(buf + nh, rest, nrest);
    int r = take_quiet(st, name, buf, nh + nrest, pid, ret);
    if (buf != small)
        PyMem_Free(buf);
    Py_XDECREF(encoded);
    return r;
}

static const char UNFINISHED_NL[] = " <unfinished ...>\n";
#define UNFINISHED_NL_LEN 18

/* One line (s[n-1] == '\n'): 1 taken, 0 for Python, -1 on error. */
static int take_line(Lines *self, State *st, const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0, nl = n - 1, ts_s = -1, ts_e = -1;
    long pid = -1;

    /* The prefix, as _FAST (or _FAST_TS once the trace showed a timestamp)
     * matches it: only the path that regex tries first is followed. */
    if (is_digit(s[0])) {
        Py_ssize_t j = 0;
        while (j < nl && is_digit(s[j]))
            j++;
        if (j <= 7 && s[j] == ' ') {
            pid = 0;
            for (Py_ssize_t k = 0; k < j; k++)
                pid = pid * 10 + (s[k] - '0');
            i = j;
            while (i < nl && s[i] == ' ')
                i++;
        } else if (!st->ts_mode) {
            return 0;
        }
    }
    if (st->ts_mode) {
        if (pid < 0)
            while (i < nl && s[i] == ' ')
                i++;
        if (is_digit(s[i])) {
            Py_ssize_t k = i;
            while (k < nl && is_digit(s[k]))
                k++;
            if (k + 6 <= nl && s[k] == ':' && is_digit(s[k + 1]) && is_digit(s[k + 2]) &&
                s[k + 3] == ':' && is_digit(s[k + 4]) && is_digit(s[k + 5]))
                k += 6;
            if (k + 1 < nl && s[k] == '.' && is_digit(s[k + 1])) {
                k++;
                while (k < nl && is_digit(s[k]))
                    k++;
            }
            if (s[k] != ' ')
                return 0;
            ts_s = i;
            ts_e = k;
            i = k;
            while (i < nl && s[i] == ' ')
                i++;
        }
    }

    /* NAME( or <... NAME resumed> */
    int resumed;
    Py_ssize_t name_s, name_e, after;
    if (is_lower_(s[i])) {
        name_s = i;
        while (i < nl && is_name(s[i]))
            i++;
        if (s[i] != '(')
            return 0;
        name_e = i;
        after = i + 1;
        resumed = 0;
    } else if (nl - i > 5 && memcmp(s + i, "<... ", 5) == 0 && is_lower_(s[i + 5])) {
        name_s = i + 5;
        i = name_s;
        while (i < nl && is_name(s[i]))
            i++;
        name_e = i;
        if (nl - i < 9 || memcmp(s + i, " resumed>", 9) != 0)
            return 0;
        after = i + 9;
        resumed = 1;
    } else {
        return 0;
    }

    Py_ssize_t close, ret_at;
    PyObject *name;
    int r;
    if (!find_tail(s, after, nl, &close, &ret_at)) {
        /* The first half of a split call, under a pid with nothing pending. */
        if (resumed || pid < 0 || n < UNFINISHED_NL_LEN ||
            memcmp(s + n - UNFINISHED_NL_LEN, UNFINISHED_NL, UNFINISHED_NL_LEN) != 0 ||
            after > n - UNFINISHED_NL_LEN)
            return 0;
        PyObject *key = PyLong_FromLong(pid);
        if (key == NULL)
            return -1;
        r = PyDict_Contains(st->pending, key);
        if (r != 0) {
            Py_DECREF(key);
            return r < 0 ? -1 : 0;
        }
        name = name_str(self, s + name_s, name_e - name_s);
        if (name == NULL) {
            Py_DECREF(key);
            return -1;
        }
        PyObject *args = PyUnicode_DecodeUTF8((const char *)s + after,
                                              n - UNFINISHED_NL_LEN - after, "surrogateescape");
        PyObject *ts = ts_s < 0 ? Py_NewRef(Py_None)
                                : PyUnicode_DecodeASCII((const char *)s + ts_s, ts_e - ts_s, NULL);
        PyObject *lineno = PyLong_FromSsize_t(self->lineno), *half = NULL;
        if (name != NULL && args != NULL && ts != NULL && lineno != NULL)
            half = PyTuple_Pack(5, name, args, lineno, ts, Py_False);
        Py_XDECREF(name);
        Py_XDECREF(args);
        Py_XDECREF(ts);
        Py_XDECREF(lineno);
        r = half == NULL ? -1 : PyDict_SetItem(st->pending, key, half);
        Py_XDECREF(half);
        Py_DECREF(key);
        return r < 0 ? -1 : 1;
    }

    Ret ret;
    if (!read_return(s + ret_at, nl - ret_at, &ret))
        return 0;
    name = name_str(self, s + name_s, name_e - name_s);
    if (name == NULL)
        return -1;
    if (!resumed) {
        /* A complete call, unless its parentheses do not pair up (program
         * output spliced into the line): _parens_pair. */
        if (memchr(s + after, '(', close - after) != NULL && !parens_pair(s, close, after)) {
            r = 0;
            goto done;
        }
        r = contains(st->names, name);
        if (r != 0) {
            if (r > 0 && st->classify != NULL) {
                r = st->n_needles ? has_needle(self, st, s, n, NULL) : 0;
                if (r == 0)
                    r = take_quiet(st, name, s + after, close - after, pid, &ret);
                else
                    r = r < 0 ? -1 : 0;
            } else {
                r = r < 0 ? -1 : 0;
            }
            goto done;
        }
        if (st->n_needles) {
            r = has_needle(self, st, s, n, NULL);
            if (r != 0) {
                r = r < 0 ? -1 : 0;
                goto done;
            }
        }
        r = count(st, name, ret.error) < 0 ? -1 : 1;
        goto done;
    }
    /* A resumed half that returned, under a pid, joined with its first half. */
    if (pid < 0) {
        r = 0;
        goto done;
    }
    PyObject *key = PyLong_FromLong(pid);
    if (key == NULL) {
        r = -1;
        goto done;
    }
    PyObject *half = PyDict_GetItemWithError(st->pending, key);
    if (half == NULL || !PyTuple_Check(half) || PyTuple_GET_SIZE(half) < 2) {
        r = PyErr_Occurred() ? -1 : 0;
        Py_DECREF(key);
        goto done;
    }
    r = PyUnicode_Compare(PyTuple_GET_ITEM(half, 0), name);
    if (r != 0) {
        r = (r == -1 && PyErr_Occurred()) ? -1 : 0;
        Py_DECREF(key);
        goto done;
    }
    Py_INCREF(half);
    int needle = st->n_needles ? has_needle(self, st, s, n, PyTuple_GET_ITEM(half, 1)) : 0;
    if (needle != 0) {
        r = needle < 0 ? -1 : 0;
    } else {
        r = contains(st->names, name);
        if (r == 0) {
            r = count(st, name, ret.error) < 0 ? -1 : 1; /* nobody selected it */
        } else if (r > 0) {
            /* Selected: the joined call may still be one the collector lets go. */
            r = st->classify == NULL ? 0
                                     : take_quiet_joined(st, name, PyTuple_GET_ITEM(half, 1),
                                                         s + after, close - after, pid, &ret);
        }
    }
    Py_DECREF(half);
    if (r == 1) {
        /* Taken: the first half leaves the pending table. */
        r = PyDict_DelItem(st->pending, key) < 0 ? -1 : 1;
        if (r == 1)
            self->split++;
    }
    Py_DECREF(key);
done:
    Py_DECREF(name);
    return r;
}

/* Make room and read the next chunk; 0, or -1 with an exception. */
static int refill(Lines *self) {
    if (self->pos > 0) {
        memmove(self->data, self->data + self->pos, self->len - self->pos);
        self->len -= self->pos;
        self->scanned -= self->pos;
        self->pos = 0;
    }
    PyObject *chunk = PyIter_Next(self->chunks);
    if (chunk == NULL) {
        if (PyErr_Occurred())
            return -1;
        self->eof = 1;
        return 0;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(chunk, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(chunk);
        return -1;
    }
    if (view.len == 0) { /* nothing to copy (and data may still be NULL) */
        PyBuffer_Release(&view);
        Py_DECREF(chunk);
        return 0;
    }
    if (self->len + view.len > self->cap) {
        Py_ssize_t cap = self->cap ? self->cap : 1 << 16;
        while (cap < self->len + view.len)
            cap *= 2;
        char *data = PyMem_Realloc(self->data, cap);
        if (data == NULL) {
            PyBuffer_Release(&view);
            Py_DECREF(chunk);
            PyErr_NoMemory();
            return -1;
        }
        self->data = data;
        self->cap = cap;
    }
    memcpy(self->data + self->len, view.buf, view.len);
    self->len += view.len;
    PyBuffer_Release(&view);
    Py_DECREF(chunk);
    return 0;
}

static PyObject *Lines_next(Lines *self) {
    State st;
    if (self->parser == NULL)
        return NULL;
    if (state_read(self, &st) < 0) {
        state_release(&st);
        return NULL;
    }
    for (;;) {
        char *nlp = NULL;
        if (self->scanned < self->len)
            nlp = memchr(self->data + self->scanned, '\n', self->len - self->scanned);
        if (nlp == NULL) {
            self->scanned = self->len;
            if (self->eof) {
                state_release(&st);
                if (self->pos >= self->len)
                    return NULL;
                /* The last line, without its "\n": Python reads it. */
                Py_ssize_t start = self->pos;
                self->pos = self->scanned = self->len;
                self->lineno++;
                return PyUnicode_DecodeUTF8(self->data + start, self->len - start,
                                            "surrogateescape");
            }
            if (refill(self) < 0) {
                state_release(&st);
                return NULL;
            }
            continue;
        }
        Py_ssize_t start = self->pos, end = nlp - self->data + 1;
        self->pos = self->scanned = end;
        self->lineno++;
        int r = st.busy ? 0 : take_line(self, &st, (const unsigned char *)self->data + start,
                                        end - start);
        if (r < 0) {
            state_release(&st);
            return NULL;
        }
        if (r == 0) {
            state_release(&st);
            return PyUnicode_DecodeUTF8(self->data + start, end - start, "surrogateescape");
        }
    }
}

static int Lines_init(Lines *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"parser", "chunks", NULL};
    PyObject *parser, *chunks;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Lines", kwlist, &parser, &chunks))
        return -1;
    /* The name cache first: a Lines without it must never hold a parser to read for. */
    if (self->names == NULL) {
        self->names = PyMem_Calloc(NAME_CACHE, sizeof(NameSlot));
        if (self->names == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    PyObject *it = PyObject_GetIter(chunks);
    if (it == NULL)
        return -1;
    Py_XSETREF(self->parser, Py_NewRef(parser));
    Py_XSETREF(self->chunks, it);
    self->len = self->pos = self->scanned = 0;
    self->eof = 0;
    self->lineno = self->split = 0;
    return 0;
}

static int Lines_traverse(Lines *self, visitproc visit, void *arg) {
    Py_VISIT(self->parser);
    Py_VISIT(self->chunks);
    Py_VISIT(self->needles_seen);
    Py_VISIT(self->needles_b);
    return 0;
}

static int Lines_clear(Lines *self) {
    Py_CLEAR(self->parser);
    Py_CLEAR(self->chunks);
    Py_CLEAR(self->needles_seen);
    Py_CLEAR(self->needles_b);
    return 0;
}

static void Lines_dealloc(Lines *self) {
    PyObject_GC_UnTrack(self);
    Lines_clear(self);
    if (self->names != NULL) {
        for (int i = 0; i < NAME_CACHE; i++)
            Py_XDECREF(self->names[i].str);
        PyMem_Free(self->names);
    }
    PyMem_Free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Lines_get_lineno(Lines *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->lineno);
}

static PyObject *Lines_get_split(Lines *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->split);
}

static PyGetSetDef Lines_getset[] = {
    {"lineno", (getter)Lines_get_lineno, NULL, "lines passed so far", NULL},
    {"split", (getter)Lines_get_split, NULL, "split calls joined here", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LinesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ci_gate.trace._scan.Lines",
    .tp_basicsize = sizeof(Lines),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Lines(parser, chunks): the lines of a trace the parser must read itself.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lines_init,
    .tp_dealloc = (destructor)Lines_dealloc,
    .tp_traverse = (traverseproc)Lines_traverse,
    .tp_clear = (inquiry)Lines_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Lines_next,
    .tp_getset = Lines_getset,
};

static struct PyModuleDef scanmodule = {
    PyModuleDef_HEAD_INIT, "_scan", "The strace parser's line filter in C (see parser.py).", -1,
};

PyMODINIT_FUNC PyInit__scan(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&str_incomplete, "_incomplete"}, {&str_timestamps, "_timestamps"},
        {&str_prefixed_seen, "_prefixed_seen"}, {&str_mixed, "_mixed"},
        {&str_default_pid, "_default_pid"}, {&str_pending, "_pending"}, {&str_stats, "stats"},
        {&str_tally, "tally"}, {&str_select, "select"}, {&str_names, "names"},
        {&str_needles, "needles"}, {&str_quiet, "quiet"}, {&str_classify, "classify"},
        {&str_counts, "counts"}, {&str_template, "template"}, {&str_keys, "keys"},
        {&str_fd_calls, "fd_calls"}, {&str_fd_tables, "fd_tables"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL)
            return NULL;
    }
    if (PyType_Ready(&LinesType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&scanmodule);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Lines", (PyObject *)&LinesType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
