/* main() of archc's standalone executables: runs the network on a .npy input, writes or ranks the output. */
#define _POSIX_C_SOURCE 200809L

#include "archc_net.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ARCHC_RUN(const float *input, float *output);
void ARCHC_SET_THREADS(int n);

static const int64_t input_shape[] = ARCHC_INPUT_SHAPE;
static const int64_t output_shape[] = ARCHC_OUTPUT_SHAPE;
_Static_assert(sizeof input_shape / sizeof *input_shape == ARCHC_INPUT_RANK,
               "ARCHC_INPUT_SHAPE has ARCHC_INPUT_RANK dims");
_Static_assert(sizeof output_shape / sizeof *output_shape == ARCHC_OUTPUT_RANK,
               "ARCHC_OUTPUT_SHAPE has ARCHC_OUTPUT_RANK dims");

/* Bad command lines and bad inputs exit with 2, failures while running or writing with 1. */
enum { EXIT_RUN_FAILED = 1, EXIT_BAD_INPUT = 2 };

/* A .npy header longer than this is not one numpy wrote for a plain array. */
#define MAX_HEADER_LEN (1 << 20)
#define MAX_RANK 64
/* Room for a shape of MAX_RANK dims written as a Python tuple. */
#define SHAPE_TEXT 2048
#define WARMUP_RUNS 3

struct options {
    const char *input, *output;
    long top, threads, bench;
};

struct npy_header {
    char descr[16];
    bool fortran_order;
    int rank;
    int64_t shape[MAX_RANK];
};

/* Reads a .npy header's dict, a Python literal. */
struct cursor {
    const char *p, *end;
};

static _Noreturn void fail(int status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
    exit(status);
}

/* Writes `shape` as Python writes a tuple: "(1, 3)", "(5,)", "()". */
static const char *shape_text(char *buf, const int64_t *shape, int rank)
{
    size_t n = (size_t)snprintf(buf, SHAPE_TEXT, "(");
    for (int i = 0; i < rank && n < SHAPE_TEXT; i++)
        n += (size_t)snprintf(buf + n, SHAPE_TEXT - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n < SHAPE_TEXT)
        snprintf(buf + n, SHAPE_TEXT - n, rank == 1 ? ",)" : ")");
    return buf;
}

static void print_usage(FILE *to, const char *program)
{
    char in[SHAPE_TEXT], out[SHAPE_TEXT];
    fprintf(to,
            "usage: %s --input X.npy [--output Y.npy] [--top K] [--threads T] [--bench N]\n"
            "Runs the network " ARCHC_NAME " on X.npy (float32 or float64, C order, shape %s).\n"
            "  --input X.npy   the input\n"
            "  --output Y.npy  writes the output, float32 of shape %s\n"
            "  --top K         prints the K largest outputs of each batch item\n"
            "  --threads T     runs on T threads (default 1)\n"
            "  --bench N       times N runs after %d warm-up runs, printing JSON\n",
            program, shape_text(in, input_shape, ARCHC_INPUT_RANK),
            shape_text(out, output_shape, ARCHC_OUTPUT_RANK), WARMUP_RUNS);
}

static _Noreturn void usage_error(const char *program, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "%s: ", program);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
    print_usage(stderr, program);
    exit(EXIT_BAD_INPUT);
}

static bool parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max)
        return false;
    *out = value;
    return true;
}

/* The value of option argv[*i], which must be a number in [min, max]; advances *i past it. */
static long number_option(int argc, char **argv, int *i, long min, long max)
{
    const char *name = argv[*i];
    long value;
    if (++*i == argc)
        usage_error(argv[0], "%s needs a value", name);
    if (!parse_long(argv[*i], min, max, &value))
        usage_error(argv[0], "%s takes an integer from %ld to %ld, not '%s'", name, min, max, argv[*i]);
    return value;
}

static const char *path_option(int argc, char **argv, int *i)
{
    const char *name = argv[*i];
    if (++*i == argc)
        usage_error(argv[0], "%s needs a value", name);
    return argv[*i];
}

static struct options parse_args(int argc, char **argv)
{
    struct options o = {.threads = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout, argv[0]);
            exit(0);
        } else if (!strcmp(a, "--input")) {
            o.input = path_option(argc, argv, &i);
        } else if (!strcmp(a, "--output")) {
            o.output = path_option(argc, argv, &i);
        } else if (!strcmp(a, "--top")) {
            o.top = number_option(argc, argv, &i, 1, INT_MAX);
        } else if (!strcmp(a, "--threads")) {
            o.threads = number_option(argc, argv, &i, 1, 1024);
        } else if (!strcmp(a, "--bench")) {
            o.bench = number_option(argc, argv, &i, 1, 100000000);
        } else {
            usage_error(argv[0], "unexpected argument '%s'", a);
        }
    }
    if (!o.input)
        usage_error(argv[0], "--input is required");
    return o;
}

static int64_t element_count(const int64_t *shape, int rank)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

/* Float buffers are cache-line aligned, as vectorized network code likes them. */
static float *alloc_floats(int64_t count)
{
    size_t bytes = ((size_t)count * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p)
        fail(EXIT_RUN_FAILED, "%s: out of memory", ARCHC_NAME);
    return p;
}

static void skip_space(struct cursor *c)
{
    while (c->p < c->end && isspace((unsigned char)*c->p))
        c->p++;
}

static bool eat(struct cursor *c, const char *token)
{
    size_t n = strlen(token);
    skip_space(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, token, n))
        return false;
    c->p += n;
    return true;
}

/* A quoted string without escapes (numpy writes none in the keys and dtypes it reads back). */
static bool parse_string(struct cursor *c, char *out, size_t size)
{
    skip_space(c);
    if (c->p == c->end || (*c->p != '\'' && *c->p != '"'))
        return false;
    char quote = *c->p++;
    size_t n = 0;
    for (; c->p < c->end && *c->p != quote; c->p++) {
        if (*c->p == '\\' || n + 1 == size)
            return false;
        out[n++] = *c->p;
    }
    if (c->p == c->end)
        return false;
    c->p++;
    out[n] = 0;
    return true;
}

static bool parse_bool(struct cursor *c, bool *out)
{
    if (eat(c, "True"))
        return *out = true;
    *out = false;
    return eat(c, "False");
}

static bool parse_dim(struct cursor *c, int64_t *out)
{
    skip_space(c);
    if (c->p == c->end || !isdigit((unsigned char)*c->p))
        return false;
    int64_t v = 0;
    for (; c->p < c->end && isdigit((unsigned char)*c->p); c->p++) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*c->p - '0');
    }
    /* Python 2's numpy wrote long integers as 3L. */
    if (c->p < c->end && *c->p == 'L')
        c->p++;
    *out = v;
    return true;
}

static bool parse_shape(struct cursor *c, struct npy_header *h)
{
    if (!eat(c, "("))
        return false;
    for (h->rank = 0; !eat(c, ")");) {
        if (h->rank == MAX_RANK || !parse_dim(c, &h->shape[h->rank++]))
            return false;
        if (!eat(c, ","))
            return eat(c, ")");
    }
    return true;
}

/* Parses one `'key': value` entry into h; returns what is wrong, or NULL. */
static const char *parse_entry(struct cursor *c, struct npy_header *h, unsigned *seen)
{
    char key[32];
    if (!parse_string(c, key, sizeof key) || !eat(c, ":"))
        return "expected a quoted key and ':'";
    if (!strcmp(key, "descr")) {
        *seen |= 1;
        return parse_string(c, h->descr, sizeof h->descr) ? NULL : "'descr' is not a plain dtype string";
    }
    if (!strcmp(key, "fortran_order")) {
        *seen |= 2;
        return parse_bool(c, &h->fortran_order) ? NULL : "'fortran_order' is not True or False";
    }
    if (!strcmp(key, "shape")) {
        *seen |= 4;
        return parse_shape(c, h) ? NULL : "'shape' is not a tuple of non-negative integers";
    }
    return "unexpected key";
}

/* Parses the header dict; returns what is wrong, or NULL. */
static const char *parse_header(const char *text, size_t len, struct npy_header *h)
{
    struct cursor c = {text, text + len};
    unsigned seen = 0;
    if (!eat(&c, "{"))
        return "not a dict";
    while (!eat(&c, "}")) {
        const char *error = parse_entry(&c, h, &seen);
        if (error)
            return error;
        if (!eat(&c, ",")) {
            if (!eat(&c, "}"))
                return "expected ',' or '}'";
            break;
        }
    }
    skip_space(&c);
    if (c.p != c.end)
        return "text after the dict";
    return seen == 7 ? NULL : "'descr', 'fortran_order' or 'shape' missing";
}

/* Decodes one float of `size` bytes (4 or 8), stored little- or big-endian, on any host. */
static float decode(const unsigned char *b, int size, bool big_endian)
{
    uint64_t bits = 0;
    for (int k = 0; k < size; k++)
        bits |= (uint64_t)b[big_endian ? size - 1 - k : k] << (8 * k);
    if (size == 4) {
        uint32_t u = (uint32_t)bits;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    double d;
    memcpy(&d, &bits, sizeof d);
    return (float)d;
}

/* Reads the magic, version and header dict of an open .npy file; exits on anything wrong. */
static void read_header(FILE *f, const char *path, struct npy_header *h)
{
    unsigned char pre[12];
    size_t got = fread(pre, 1, 8, f);
    if (ferror(f))
        fail(EXIT_BAD_INPUT, "%s: %s", path, strerror(errno));
    if (got == 0)
        fail(EXIT_BAD_INPUT, "%s: empty file, not a .npy file", path);
    if (got < 6 || memcmp(pre, "\x93NUMPY", 6))
        fail(EXIT_BAD_INPUT, "%s: not a .npy file (bad magic)", path);
    if (got < 8)
        fail(EXIT_BAD_INPUT, "%s: truncated header", path);
    if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0)
        fail(EXIT_BAD_INPUT, "%s: unsupported .npy format version %d.%d", path, pre[6], pre[7]);
    size_t len_bytes = pre[6] == 1 ? 2 : 4;
    if (fread(pre + 8, 1, len_bytes, f) < len_bytes)
        fail(EXIT_BAD_INPUT, "%s: truncated header", path);
    uint32_t len = 0;
    for (size_t k = 0; k < len_bytes; k++)
        len |= (uint32_t)pre[8 + k] << (8 * k);
    if (len > MAX_HEADER_LEN)
        fail(EXIT_BAD_INPUT, "%s: header of %" PRIu32 " bytes is too long", path, len);
    char *text = malloc(len ? len : 1);
    if (!text)
        fail(EXIT_RUN_FAILED, "%s: out of memory", path);
    if (fread(text, 1, len, f) < len)
        fail(EXIT_BAD_INPUT, "%s: truncated header", path);
    const char *error = parse_header(text, len, h);
    if (error)
        fail(EXIT_BAD_INPUT, "%s: bad header: %s", path, error);
    free(text);
}

/* The size of one element of dtype `descr` that the network accepts (4 or 8), or exits. */
static int check_header(const char *path, const struct npy_header *h, bool *big_endian)
{
    const char *d = h->descr;
    if ((d[0] != '<' && d[0] != '>') || d[1] != 'f' || (strcmp(d + 2, "4") && strcmp(d + 2, "8")))
        fail(EXIT_BAD_INPUT, "%s: dtype '%s', but the network takes float32 ('<f4'; float64 is converted)",
             path, d);
    if (h->fortran_order)
        fail(EXIT_BAD_INPUT, "%s: Fortran-ordered array; save it in C order (np.ascontiguousarray)", path);
    if (h->rank != ARCHC_INPUT_RANK || memcmp(h->shape, input_shape, sizeof input_shape)) {
        char got[SHAPE_TEXT], want[SHAPE_TEXT];
        fail(EXIT_BAD_INPUT, "%s: shape %s, but the network takes %s", path,
             shape_text(got, h->shape, h->rank), shape_text(want, input_shape, ARCHC_INPUT_RANK));
    }
    *big_endian = d[0] == '>';
    return d[2] - '0';
}

/* Reads exactly `bytes` of array data and checks that nothing follows; exits otherwise. */
static unsigned char *read_data(FILE *f, const char *path, size_t bytes)
{
    unsigned char *raw = malloc(bytes ? bytes : 1);
    if (!raw)
        fail(EXIT_RUN_FAILED, "%s: out of memory", path);
    size_t got = fread(raw, 1, bytes, f);
    if (ferror(f))
        fail(EXIT_BAD_INPUT, "%s: %s", path, strerror(errno));
    if (got < bytes)
        fail(EXIT_BAD_INPUT, "%s: truncated: %zu bytes of data, %zu expected", path, got, bytes);
    size_t extra = 0;
    for (unsigned char scratch[4096]; (got = fread(scratch, 1, sizeof scratch, f)) > 0;)
        extra += got;
    if (extra)
        fail(EXIT_BAD_INPUT, "%s: %zu bytes after the data, %zu expected in all", path, extra, bytes);
    return raw;
}

/* Reads the network's input from a .npy file; exits with a message naming the file when it is not one. */
static float *read_input(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail(EXIT_BAD_INPUT, "%s: %s", path, strerror(errno));
    struct npy_header h;
    bool big_endian;
    read_header(f, path, &h);
    int size = check_header(path, &h, &big_endian);
    int64_t count = element_count(input_shape, ARCHC_INPUT_RANK);
    unsigned char *raw = read_data(f, path, (size_t)count * (size_t)size);
    fclose(f);
    float *input = alloc_floats(count);
    for (int64_t i = 0; i < count; i++)
        input[i] = decode(raw + i * size, size, big_endian);
    free(raw);
    return input;
}

/* The .npy v1.0 image of the output: the header, padded to 64 bytes as numpy does, then <f4 data. */
static unsigned char *encode_output(const float *output, int64_t count, size_t *bytes)
{
    char dict[SHAPE_TEXT + 64], shape[SHAPE_TEXT];
    int dict_len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                            shape_text(shape, output_shape, ARCHC_OUTPUT_RANK));
    size_t header_len = ((size_t)10 + (size_t)dict_len + 1 + 63) / 64 * 64 - 10;
    *bytes = 10 + header_len + (size_t)count * 4;
    unsigned char *image = malloc(*bytes);
    if (!image)
        fail(EXIT_RUN_FAILED, "%s: out of memory", ARCHC_NAME);
    memcpy(image, "\x93NUMPY\x01\x00", 8);
    image[8] = (unsigned char)header_len;
    image[9] = (unsigned char)(header_len >> 8);
    memset(image + 10, ' ', header_len);
    memcpy(image + 10, dict, (size_t)dict_len);
    image[10 + header_len - 1] = '\n';
    unsigned char *data = image + 10 + header_len;
    for (int64_t i = 0; i < count; i++) {
        uint32_t u;
        memcpy(&u, &output[i], sizeof u);
        for (int k = 0; k < 4; k++)
            data[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    return image;
}

/* Writes the output through `path`.tmp and a rename, so a failure never leaves a partial file at `path`. */
static void write_output(const char *path, const float *output, int64_t count)
{
    size_t bytes;
    unsigned char *image = encode_output(output, count, &bytes);
    size_t path_len = strlen(path);
    char *tmp = malloc(path_len + 5);
    if (!tmp)
        fail(EXIT_RUN_FAILED, "%s: out of memory", path);
    memcpy(tmp, path, path_len);
    memcpy(tmp + path_len, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        fail(EXIT_RUN_FAILED, "%s: cannot write %s: %s", path, tmp, strerror(errno));
    bool ok = fwrite(image, 1, bytes, f) == bytes;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int error = errno;
        remove(tmp);
        fail(EXIT_RUN_FAILED, "%s: cannot write: %s", path, strerror(error));
    }
    free(tmp);
    free(image);
}

struct ranked {
    float value;
    int64_t index;
};

/* Descending by value, NaN first (a NaN output is news), ties by lower index. */
static int by_rank(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    bool na = isnan(a->value), nb = isnan(b->value);
    if (na != nb)
        return na ? -1 : 1;
    if (!na && a->value != b->value)
        return a->value > b->value ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* Prints the k largest entries of each batch item of the output, taken as [batch, rest...]. */
static void print_top(const float *output, long k)
{
    int64_t items = ARCHC_OUTPUT_RANK >= 2 ? output_shape[0] : 1;
    int64_t per_item = items ? element_count(output_shape, ARCHC_OUTPUT_RANK) / items : 0;
    struct ranked *r = malloc((size_t)(per_item ? per_item : 1) * sizeof *r);
    if (!r)
        fail(EXIT_RUN_FAILED, "%s: out of memory", ARCHC_NAME);
    for (int64_t item = 0; item < items; item++) {
        for (int64_t i = 0; i < per_item; i++)
            r[i] = (struct ranked){output[item * per_item + i], i};
        qsort(r, (size_t)per_item, sizeof *r, by_rank);
        for (int64_t i = 0; i < per_item && i < k; i++)
            printf("item %" PRId64 ": class %" PRId64 "  %.6f\n", item, r[i].index, (double)r[i].value);
    }
    free(r);
}

static void run_network(const float *input, float *output)
{
    int status = ARCHC_RUN(input, output);
    if (status != 0)
        fail(EXIT_RUN_FAILED, "%s: the network failed (status %d)", ARCHC_NAME, status);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int by_value(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The q-quantile of n sorted values, interpolated linearly as numpy.percentile does by default. */
static double quantile(const double *sorted, long n, double q)
{
    double pos = q * (double)(n - 1);
    long lo = (long)pos;
    return lo + 1 < n ? sorted[lo] + (pos - (double)lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
}

static void bench(const float *input, float *output, const struct options *o)
{
    double *ms = malloc((size_t)o->bench * sizeof *ms);
    if (!ms)
        fail(EXIT_RUN_FAILED, "%s: out of memory", ARCHC_NAME);
    for (int i = 0; i < WARMUP_RUNS; i++)
        run_network(input, output);
    for (long i = 0; i < o->bench; i++) {
        double start = now_ms();
        run_network(input, output);
        ms[i] = now_ms() - start;
    }
    qsort(ms, (size_t)o->bench, sizeof *ms, by_value);
    printf("{\"median_ms\": %.3f, \"min_ms\": %.3f, \"p90_ms\": %.3f, \"runs\": %ld, \"threads\": %ld, "
           "\"batch\": %" PRId64 "}\n",
           quantile(ms, o->bench, 0.5), ms[0], quantile(ms, o->bench, 0.9), o->bench, o->threads,
           input_shape[0]);
    free(ms);
}

int main(int argc, char **argv)
{
    struct options o = parse_args(argc, argv);
    float *input = read_input(o.input);
    int64_t output_count = element_count(output_shape, ARCHC_OUTPUT_RANK);
    float *output = alloc_floats(output_count);
    ARCHC_SET_THREADS((int)o.threads);
    run_network(input, output);
    if (o.output)
        write_output(o.output, output, output_count);
    if (o.top)
        print_top(output, o.top);
    if (o.bench)
        bench(input, output, &o);
    if (fflush(stdout) != 0)
        fail(EXIT_RUN_FAILED, "%s: writing to stdout: %s", ARCHC_NAME, strerror(errno));
    free(output);
    free(input);
    return 0;
}
