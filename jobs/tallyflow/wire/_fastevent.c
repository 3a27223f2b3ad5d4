/* The fast path of `tallyflow produce --file` and of EventProducer.send / send_batch: a JSON line
 * (or an event dict) in, the Kafka key and the Avro value (Confluent framing) out, in one pass,
 * for the events producers actually write.
 *
 * It is not a JSON parser. It accepts only a narrow canonical shape: ASCII strings (in lines:
 * printable, without escapes), decimal strings or non-negative integers as values, UTC times as
 * YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+00:00), no duplicate keys. For anything else, valid or not, it
 * returns None and the caller runs the full Python path (core/events.parse_line or validate, then
 * wire/avro.encode_event), so every verdict and every reason stays the Python path's. What it
 * accepts, it writes byte for byte as encode_event does (tests/unit/test_fastevent.py holds the
 * two paths equal over the event vectors and over mutated lines).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;

#define SCALE 12     /* schemas/event_limits.json decimal_scale: DECIMAL(38, 12) */
#define MAX_ENTRIES 64 /* entries per map on this path; a larger map goes the Python way */
#define MAX_SOURCE 1024 /* schemas/event_limits.json max_source_length; a longer source goes the Python way */

typedef struct {
    const char *p;
    Py_ssize_t n;
} span;

typedef struct {
    span key;
    span text;      /* dimensions: the value */
    u128 unscaled;  /* values: the quantity times 10^12 */
} entry;

typedef struct {
    const unsigned char *s, *e;
} cursor;

typedef struct {
    PyObject_HEAD
    unsigned char header[5];
    int64_t now_us;
    double max_future_s;
    u128 max_unscaled;
    Py_ssize_t max_id, max_dims, max_dim_len;
    unsigned char *buf;
    Py_ssize_t cap;
} Encoder;

static void ws(cursor *c) {
    while (c->s < c->e && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r')) c->s++;
}

static int expect(cursor *c, char ch) {
    ws(c);
    if (c->s < c->e && *c->s == (unsigned char)ch) {
        c->s++;
        return 1;
    }
    return 0;
}

/* A string of printable ASCII, no escapes (so its length in bytes is its length in code points). */
static int string(cursor *c, span *out) {
    ws(c);
    if (c->s >= c->e || *c->s != '"') return 0;
    const unsigned char *start = ++c->s;
    while (c->s < c->e && *c->s != '"') {
        if (*c->s < 0x20 || *c->s > 0x7e || *c->s == '\\') return 0;
        c->s++;
    }
    if (c->s >= c->e) return 0;
    out->p = (const char *)start;
    out->n = c->s - start;
    c->s++;
    return 1;
}

static int same(span a, span b) { return a.n == b.n && memcmp(a.p, b.p, (size_t)a.n) == 0; }

static int is(span a, const char *lit) {
    size_t n = strlen(lit);
    return (size_t)a.n == n && memcmp(a.p, lit, n) == 0;
}

/* digits[.digits{1,12}] as an integer times 10^12; at most 26 significant integer digits. */
static int decimal(const char *p, Py_ssize_t n, u128 *out) {
    Py_ssize_t i = 0, significant = 0, frac = 0;
    u128 v = 0;
    if (n == 0) return 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        if (v == 0 && p[i] == '0') continue;
        if (++significant > 26) return 0;
        v = v * 10 + (u128)(p[i] - '0');
    }
    if (i == 0) return 0;
    if (i < n) {
        if (p[i] != '.' || i + 1 == n) return 0;
        for (i++; i < n; i++) {
            if (p[i] < '0' || p[i] > '9' || ++frac > SCALE) return 0;
            v = v * 10 + (u128)(p[i] - '0');
        }
    }
    for (; frac < SCALE; frac++) v *= 10;
    *out = v;
    return 1;
}

/* A quantity: a decimal string, or a JSON integer without sign or leading zero. */
static int quantity(cursor *c, u128 *out) {
    ws(c);
    if (c->s < c->e && *c->s == '"') {
        span t;
        return string(c, &t) && decimal(t.p, t.n, out);
    }
    const unsigned char *start = c->s;
    while (c->s < c->e && *c->s >= '0' && *c->s <= '9') c->s++;
    Py_ssize_t n = c->s - start;
    if (n == 0 || (n > 1 && *start == '0')) return 0;
    if (c->s < c->e && (*c->s == '.' || *c->s == 'e' || *c->s == 'E')) return 0; /* a JSON float */
    return decimal((const char *)start, n, out);
}

/* {"key": value, ...}, values as quantities or as strings; duplicate keys go the Python way. */
static int map(cursor *c, entry *entries, Py_ssize_t *count, int quantities) {
    *count = 0;
    if (!expect(c, '{')) return 0;
    if (expect(c, '}')) return 1;
    do {
        if (*count == MAX_ENTRIES) return 0;
        entry *en = &entries[*count];
        if (!string(c, &en->key) || !expect(c, ':')) return 0;
        if (quantities ? !quantity(c, &en->unscaled) : !string(c, &en->text)) return 0;
        for (Py_ssize_t i = 0; i < *count; i++)
            if (same(entries[i].key, en->key)) return 0;
        (*count)++;
    } while (expect(c, ','));
    return expect(c, '}');
}

static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

static int64_t days_from_civil(int64_t y, int m, int d) { /* H. Hinnant's algorithm */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+00:00), 1970 or later, as microseconds since the epoch. */
static int utc_time(span t, int64_t *us) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = t.p;
    int y, mo, d, h, mi, s, frac = 0, scale = 1000000;
    if (t.n < 20 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':') return 0;
    if (!digits(p, 4, &y) || !digits(p + 5, 2, &mo) || !digits(p + 8, 2, &d) || !digits(p + 11, 2, &h) ||
        !digits(p + 14, 2, &mi) || !digits(p + 17, 2, &s))
        return 0;
    Py_ssize_t i = 19;
    if (p[i] == '.') {
        Py_ssize_t start = ++i;
        while (i < t.n && p[i] >= '0' && p[i] <= '9') {
            frac = frac * 10 + (p[i] - '0');
            scale /= 10;
            i++;
        }
        if (i == start || i - start > 6) return 0;
    }
    if (!((t.n - i == 1 && p[i] == 'Z') || (t.n - i == 6 && memcmp(p + i, "+00:00", 6) == 0))) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        s > 59)
        return 0;
    *us = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000000) + (int64_t)frac * scale;
    return 1;
}

static unsigned char *varint(unsigned char *o, uint64_t zigzagged) {
    while (zigzagged > 0x7f) {
        *o++ = (unsigned char)((zigzagged & 0x7f) | 0x80);
        zigzagged >>= 7;
    }
    *o++ = (unsigned char)zigzagged;
    return o;
}

static unsigned char *avro_string(unsigned char *o, span s) {
    o = varint(o, (uint64_t)s.n << 1);
    memcpy(o, s.p, (size_t)s.n);
    return o + s.n;
}

/* The unscaled decimal as Avro bytes: big-endian two's complement, as short as its sign allows
 * (Python's int.to_bytes((bit_length + 8) // 8, signed=True)). */
static unsigned char *avro_decimal(unsigned char *o, u128 v) {
    int bits = 0;
    for (u128 x = v; x; x >>= 1) bits++;
    int n = (bits + 8) / 8;
    *o++ = (unsigned char)(n << 1);
    for (int i = n - 1; i >= 0; i--) *o++ = (unsigned char)(v >> (8 * i));
    return o;
}

/* One event's fields, pointing into the line or into the dict's strings. */
typedef struct {
    span id, customer, type, time, source;
    int has_source; /* 2: a string; otherwise null */
    entry values[MAX_ENTRIES], dims[MAX_ENTRIES];
    Py_ssize_t n_values, n_dims;
} event;

/* What core/events.validate checks, then the Avro record as avro.encode_event writes it; None
 * when a check fails (the Python path then says why). */
static PyObject *emit(Encoder *self, const event *ev) {
    int64_t us;
    if (ev->id.n < 1 || ev->id.n > self->max_id || ev->customer.n < 1 || ev->customer.n > self->max_id ||
        ev->type.n < 1 || ev->type.n > self->max_id)
        Py_RETURN_NONE;
    if (!utc_time(ev->time, &us) || (double)(us - self->now_us) / 1e6 > self->max_future_s) Py_RETURN_NONE;
    if (ev->n_dims > self->max_dims) Py_RETURN_NONE;
    /* Each string with a length prefix of at most 10 bytes, each quantity at most 18. */
    Py_ssize_t need = 5 + ev->id.n + ev->customer.n + ev->type.n + ev->source.n + 64;
    for (Py_ssize_t i = 0; i < ev->n_dims; i++) {
        if (ev->dims[i].key.n > self->max_dim_len || ev->dims[i].text.n > self->max_dim_len) Py_RETURN_NONE;
        need += ev->dims[i].key.n + ev->dims[i].text.n + 20;
    }
    for (Py_ssize_t i = 0; i < ev->n_values; i++) {
        if (ev->values[i].unscaled > self->max_unscaled) Py_RETURN_NONE;
        need += ev->values[i].key.n + 28;
    }
    if (need > self->cap) {
        unsigned char *grown = PyMem_Realloc(self->buf, (size_t)need);
        if (grown == NULL) return PyErr_NoMemory();
        self->buf = grown;
        self->cap = need;
    }
    unsigned char *o = self->buf;
    memcpy(o, self->header, 5);
    o += 5;
    o = avro_string(o, ev->id);
    o = avro_string(o, ev->customer);
    o = avro_string(o, ev->type);
    o = varint(o, (uint64_t)(us / 1000) << 1);
    if (ev->n_values) {
        o = varint(o, (uint64_t)ev->n_values << 1);
        for (Py_ssize_t i = 0; i < ev->n_values; i++) {
            o = avro_string(o, ev->values[i].key);
            o = avro_decimal(o, ev->values[i].unscaled);
        }
    }
    *o++ = 0;
    if (ev->n_dims) {
        o = varint(o, (uint64_t)ev->n_dims << 1);
        for (Py_ssize_t i = 0; i < ev->n_dims; i++) {
            o = avro_string(o, ev->dims[i].key);
            o = avro_string(o, ev->dims[i].text);
        }
    }
    *o++ = 0;
    if (ev->has_source == 2) {
        *o++ = 2; /* union branch 1 (zigzag 1): a string */
        o = avro_string(o, ev->source);
    } else {
        *o++ = 0; /* union branch 0: null */
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) return NULL;
    PyObject *k = PyBytes_FromStringAndSize(ev->customer.p, ev->customer.n);
    PyObject *v = PyBytes_FromStringAndSize((const char *)self->buf, o - self->buf);
    if (k == NULL || v == NULL) {
        Py_XDECREF(k);
        Py_XDECREF(v);
        Py_DECREF(pair);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, k); /* steals the references */
    PyTuple_SET_ITEM(pair, 1, v);
    return pair;
}

static PyObject *encode(Encoder *self, PyObject *line) {
    char *raw;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(line, &raw, &len) < 0) return NULL;
    cursor c = {(const unsigned char *)raw, (const unsigned char *)raw + len};
    event ev = {0};
    span key;
    int has_id = 0, has_customer = 0, has_type = 0, has_time = 0, has_values = 0, has_dims = 0, has_source = 0;

    if (!expect(&c, '{')) Py_RETURN_NONE;
    do {
        if (!string(&c, &key) || !expect(&c, ':')) Py_RETURN_NONE;
        int ok;
        if (is(key, "event_id") && !has_id) ok = has_id = string(&c, &ev.id);
        else if (is(key, "customer_id") && !has_customer) ok = has_customer = string(&c, &ev.customer);
        else if (is(key, "event_type") && !has_type) ok = has_type = string(&c, &ev.type);
        else if (is(key, "event_time") && !has_time) ok = has_time = string(&c, &ev.time);
        else if (is(key, "values") && !has_values) ok = has_values = map(&c, ev.values, &ev.n_values, 1);
        else if (is(key, "dimensions") && !has_dims) ok = has_dims = map(&c, ev.dims, &ev.n_dims, 0);
        else if (is(key, "source") && !has_source) {
            ws(&c);
            has_source = 1;
            if (c.e - c.s >= 4 && memcmp(c.s, "null", 4) == 0) {
                c.s += 4;
                ok = 1;
            } else {
                ok = string(&c, &ev.source) && ev.source.n <= MAX_SOURCE;
                ev.has_source = 2;
            }
        } else ok = 0; /* an unknown or repeated field */
        if (!ok) Py_RETURN_NONE;
    } while (expect(&c, ','));
    if (!expect(&c, '}')) Py_RETURN_NONE;
    ws(&c);
    if (c.s != c.e || !has_id || !has_customer || !has_type || !has_time) Py_RETURN_NONE;
    return emit(self, &ev);
}

/* An exact str of printable ASCII characters (so its UTF-8 is its code points, and it holds no
 * control character), as a span of its UTF-8. */
static int ascii(PyObject *o, span *out) {
    if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_ASCII(o)) return 0;
    out->p = (const char *)PyUnicode_DATA(o);
    out->n = PyUnicode_GET_LENGTH(o);
    for (Py_ssize_t i = 0; i < out->n; i++)
        if (out->p[i] < 0x20 || out->p[i] > 0x7e) return 0;
    return 1;
}

/* A dict of exact str keys to quantities (decimal strings or non-negative ints) or to strings. */
static int dict_map(PyObject *o, entry *entries, Py_ssize_t *count, int quantities) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    *count = 0;
    if (!PyDict_CheckExact(o) || PyDict_GET_SIZE(o) > MAX_ENTRIES) return 0;
    while (PyDict_Next(o, &pos, &k, &v)) {
        entry *en = &entries[(*count)++];
        if (!ascii(k, &en->key)) return 0;
        if (!quantities) {
            if (!ascii(v, &en->text)) return 0;
        } else if (PyLong_CheckExact(v)) { /* bool is a subclass, so never exact */
            int overflow;
            long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || n < 0) return 0;
            u128 scaled = (u128)n;
            for (int i = 0; i < SCALE; i++) scaled *= 10;
            en->unscaled = scaled;
        } else {
            span t;
            if (!ascii(v, &t) || !decimal(t.p, t.n, &en->unscaled)) return 0;
        }
    }
    return 1;
}

static PyObject *encode_record(Encoder *self, PyObject *obj) {
    static PyObject *names[7];
    static const char *spelled[7] = {"event_id", "customer_id", "event_type", "event_time", "values",
                                     "dimensions", "source"};
    if (names[0] == NULL)
        for (int i = 0; i < 7; i++)
            if ((names[i] = PyUnicode_InternFromString(spelled[i])) == NULL) return NULL;
    if (!PyDict_CheckExact(obj)) Py_RETURN_NONE;
    event ev = {0};
    PyObject *f[7];
    Py_ssize_t found = 0;
    for (int i = 0; i < 7; i++) {
        f[i] = PyDict_GetItemWithError(obj, names[i]); /* borrowed */
        if (f[i] == NULL && PyErr_Occurred()) return NULL;
        found += f[i] != NULL;
    }
    if (found != PyDict_GET_SIZE(obj)) Py_RETURN_NONE; /* an unknown field (or a non-str key) */
    if (f[0] == NULL || f[1] == NULL || f[2] == NULL || f[3] == NULL || !ascii(f[0], &ev.id) ||
        !ascii(f[1], &ev.customer) || !ascii(f[2], &ev.type) || !ascii(f[3], &ev.time))
        Py_RETURN_NONE;
    if (f[4] != NULL && !dict_map(f[4], ev.values, &ev.n_values, 1)) Py_RETURN_NONE;
    if (f[5] != NULL && !dict_map(f[5], ev.dims, &ev.n_dims, 0)) Py_RETURN_NONE;
    if (f[6] != NULL && f[6] != Py_None) {
        if (!ascii(f[6], &ev.source) || ev.source.n > MAX_SOURCE) Py_RETURN_NONE;
        ev.has_source = 2;
    }
    return emit(self, &ev);
}

static int init(Encoder *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"header", "now_us", "max_future_s", "max_unscaled", "max_id", "max_dims",
                            "max_dim_len", NULL};
    Py_buffer header;
    long long now_us;
    PyObject *max_unscaled;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*LdO!nnn", names, &header, &now_us, &self->max_future_s,
                                     &PyLong_Type, &max_unscaled, &self->max_id, &self->max_dims,
                                     &self->max_dim_len))
        return -1;
    if (header.len != 5) {
        PyBuffer_Release(&header);
        PyErr_SetString(PyExc_ValueError, "header must be the 5 bytes of the Confluent framing");
        return -1;
    }
    memcpy(self->header, header.buf, 5);
    PyBuffer_Release(&header);
    self->now_us = now_us;
    /* The limit as two 64-bit halves: the caller clamps it to DECIMAL(38, 12). */
    PyObject *shift = PyLong_FromLong(64), *hi = PyNumber_Rshift(max_unscaled, shift);
    Py_DECREF(shift);
    if (hi == NULL) return -1;
    unsigned long long high = PyLong_AsUnsignedLongLong(hi), low = PyLong_AsUnsignedLongLongMask(max_unscaled);
    Py_DECREF(hi);
    if (PyErr_Occurred()) return -1;
    self->max_unscaled = ((u128)high << 64) | low;
    return 0;
}

static void dealloc(Encoder *self) {
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef encoder_methods[] = {
    {"encode", (PyCFunction)encode, METH_O,
     "encode(line: bytes) -> (key, value) | None: None means the Python path decides the line."},
    {"encode_record", (PyCFunction)encode_record, METH_O,
     "encode_record(event: dict) -> (key, value) | None: the same for an event in its JSON form."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tallyflow.wire._fastevent.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encodes canonical JSON event lines; see the module's source for what it accepts.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)init,
    .tp_dealloc = (destructor)dealloc,
    .tp_methods = encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_fastevent", .m_doc = "The canonical-line fast path of produce --file.", .m_size = -1};

PyMODINIT_FUNC PyInit__fastevent(void) {
    if (PyType_Ready(&EncoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&EncoderType);
    if (PyModule_AddObject(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(&EncoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
