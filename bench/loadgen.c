/* tunneld-bench loadgen: a small SOCKS5 load generator on libuv, for
 * bench/run.sh.  Not part of the tunneld build.
 *
 *   loadgen rps  --socks A:P --target A:P [--path /1k] [--concurrency 32]
 *                [--duration 10] [--warmup 2] [--timeout 10]
 *       Each worker loops: new TCP connection to the SOCKS5 front, SOCKS5
 *       CONNECT to the target, "GET path" (HTTP/1.1, Connection: close), read
 *       the whole response (by Content-Length, or to EOF), close.  Requests
 *       that complete inside the measured window (after the warm-up) count.
 *
 *   loadgen hold --socks A:P --target A:P [--steps 2000,10000] [--parallel 128]
 *                [--settle 2] [--timeout 10] [--pids 1,2,...] [--max-errors 500]
 *                [--step-time 120]
 *       Opens connections through the SOCKS5 front to the target (an echo
 *       server: `loadgen echo`), each one checked end to end with a 4-byte
 *       ping that must come back, then left idle.  After each step (the total
 *       held reaches the step's count) and a settle time it sums VmRSS of the
 *       given pids from /proc; the result line carries RSS before and at each
 *       step.
 *
 *   loadgen echo --listen A:P [--max-conns 20000] [--max-time 900]
 *       A tiny echo server for `hold`; prints {"mode":"echo","port":N} once it
 *       listens, then serves until SIGTERM/SIGINT or --max-time.
 *
 * Every mode prints one JSON line on stdout.  Addresses are IPv4 literals.
 * Every phase has a timeout, every loop is bounded by a count or a deadline,
 * memory is allocated up front (per worker / per held connection).
 */
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#define MAX_STEPS 16
#define MAX_PIDS  16
#define HEAD_MAX  8192
#define READ_BUF  (64 * 1024)

/* ------------------------------------------------------------------------ */
/* Options */

struct opts {
    const char *mode;
    struct sockaddr_in socks, target, listen;
    int have_socks, have_target, have_listen;
    const char *path;
    int concurrency;
    double duration, warmup, timeout;
    int steps[MAX_STEPS], nsteps;
    int parallel;
    double settle, step_time, max_time;
    int pids[MAX_PIDS], npids;
    int max_errors, max_conns;
};

static struct opts o;
static uv_loop_t *loop;
static char rbuf[READ_BUF]; /* one shared read buffer: read callbacks consume it at once */

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

__attribute__((noreturn)) static void usage(void)
{
    fprintf(stderr, "usage: loadgen rps  --socks A:P --target A:P [--path P] [--concurrency N]\n"
                    "                    [--duration S] [--warmup S] [--timeout S]\n"
                    "       loadgen hold --socks A:P --target A:P [--steps N,N] [--parallel N]\n"
                    "                    [--settle S] [--timeout S] [--pids P,P] [--max-errors N]\n"
                    "                    [--step-time S] [--max-time S]\n"
                    "       loadgen echo --listen A:P [--max-conns N] [--max-time S]\n");
    exit(2);
}

static void parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        die("bad address '%s' (want A.B.C.D:PORT)", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        die("bad port in '%s'", s);
    if (uv_ip4_addr(host, (int)port, out) != 0)
        die("bad IPv4 address in '%s'", s);
}

static double parse_num(const char *s, double lo, double hi, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || v < lo || v > hi)
        die("bad %s '%s' (%g..%g)", what, s, lo, hi);
    return v;
}

static int parse_list(const char *s, int *out, int max, long lo, long hi, const char *what)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || n >= max)
            die("bad %s list '%s'", what, s);
        out[n++] = (int)v;
        if (*end == ',')
            end++;
        else if (*end)
            die("bad %s list '%s'", what, s);
        p = end;
    }
    if (n == 0)
        die("empty %s list", what);
    return n;
}

static void parse_args(int argc, char **argv)
{
    if (argc < 2)
        usage();
    o.mode = argv[1];
    o.path = "/1k";
    o.concurrency = 32;
    o.duration = 10;
    o.warmup = 2;
    o.timeout = 10;
    o.steps[0] = 2000;
    o.steps[1] = 10000;
    o.nsteps = 2;
    o.parallel = 128;
    o.settle = 2;
    o.step_time = 120;
    o.max_time = 900;
    o.max_errors = 500;
    o.max_conns = 20000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--socks")) {
            parse_addr(v, &o.socks);
            o.have_socks = 1;
        } else if (!strcmp(a, "--target")) {
            parse_addr(v, &o.target);
            o.have_target = 1;
        } else if (!strcmp(a, "--listen")) {
            parse_addr(v, &o.listen);
            o.have_listen = 1;
        } else if (!strcmp(a, "--path")) {
            if (v[0] != '/' || strlen(v) > 1024 || strpbrk(v, " \r\n"))
                die("bad path '%s'", v);
            o.path = v;
        } else if (!strcmp(a, "--concurrency")) {
            o.concurrency = (int)parse_num(v, 1, 10000, "concurrency");
        } else if (!strcmp(a, "--duration")) {
            o.duration = parse_num(v, 0.1, 3600, "duration");
        } else if (!strcmp(a, "--warmup")) {
            o.warmup = parse_num(v, 0, 3600, "warmup");
        } else if (!strcmp(a, "--timeout")) {
            o.timeout = parse_num(v, 0.01, 600, "timeout");
        } else if (!strcmp(a, "--steps")) {
            o.nsteps = parse_list(v, o.steps, MAX_STEPS, 1, 1000000, "steps");
            for (int k = 1; k < o.nsteps; k++)
                if (o.steps[k] <= o.steps[k - 1])
                    die("--steps must increase");
        } else if (!strcmp(a, "--parallel")) {
            o.parallel = (int)parse_num(v, 1, 10000, "parallel");
        } else if (!strcmp(a, "--settle")) {
            o.settle = parse_num(v, 0, 600, "settle");
        } else if (!strcmp(a, "--step-time")) {
            o.step_time = parse_num(v, 1, 3600, "step-time");
        } else if (!strcmp(a, "--max-time")) {
            o.max_time = parse_num(v, 1, 86400, "max-time");
        } else if (!strcmp(a, "--pids")) {
            o.npids = parse_list(v, o.pids, MAX_PIDS, 1, INT_MAX, "pids");
        } else if (!strcmp(a, "--max-errors")) {
            o.max_errors = (int)parse_num(v, 0, 1000000, "max-errors");
        } else if (!strcmp(a, "--max-conns")) {
            o.max_conns = (int)parse_num(v, 1, 1000000, "max-conns");
        } else {
            usage();
        }
    }
}

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

static uint64_t ms(double s)
{
    return (uint64_t)(s * 1000.0 + 0.5);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static long nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = rbuf;
    buf->len = sizeof rbuf;
}

/* ------------------------------------------------------------------------ */
/* Error kinds */

enum err_kind {
    E_CONNECT,
    E_SOCKS,
    E_HTTP,
    E_TIMEOUT,
    E_EOF,
    E_RESET,
    E_WRITE,
    E_ABORTED,
    E_COUNT
};
static const char *const err_names[E_COUNT] = {"connect", "socks", "http",  "timeout",
                                               "eof",     "reset", "write", "not_attempted"};

static void print_errors(const uint64_t *errs)
{
    printf("{");
    for (int k = 0; k < E_COUNT; k++)
        printf("%s\"%s\":%" PRIu64, k ? "," : "", err_names[k], errs[k]);
    printf("}");
}

static uint64_t sum_errors(const uint64_t *errs)
{
    uint64_t t = 0;
    for (int k = 0; k < E_COUNT; k++)
        t += errs[k];
    return t;
}

/* ------------------------------------------------------------------------ */
/* Latency histogram: exact below 64 us, then 32 sub-buckets per power of two
 * (about 3% resolution), up to far beyond any timeout. */

#define H_SUB_BITS 5
#define H_SUB      (1u << H_SUB_BITS)
#define H_LINEAR   (2u * H_SUB)
#define H_GROUPS   40u
#define H_BUCKETS  (H_LINEAR + H_GROUPS * H_SUB)

static uint64_t hist[H_BUCKETS];
static uint64_t hist_n, hist_max_us;

static unsigned hist_index(uint64_t us)
{
    if (us < H_LINEAR)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= 6 */
    unsigned shift = msb - H_SUB_BITS;
    uint64_t idx = H_LINEAR + (uint64_t)(msb - H_SUB_BITS - 1) * H_SUB + ((us >> shift) - H_SUB);
    return idx >= H_BUCKETS ? H_BUCKETS - 1 : (unsigned)idx;
}

static double hist_value_us(unsigned idx)
{
    if (idx < H_LINEAR)
        return idx;
    unsigned k = idx - H_LINEAR;
    unsigned shift = k / H_SUB + 1;
    uint64_t lower = (uint64_t)(H_SUB + k % H_SUB) << shift;
    return (double)lower + (double)(1ull << shift) / 2.0;
}

static void hist_add(uint64_t us)
{
    hist[hist_index(us)]++;
    hist_n++;
    if (us > hist_max_us)
        hist_max_us = us;
}

static double hist_pct_ms(double p)
{
    if (hist_n == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)hist_n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        cum += hist[i];
        if (cum >= rank)
            return hist_value_us(i) / 1000.0;
    }
    return (double)hist_max_us / 1000.0;
}

/* ------------------------------------------------------------------------ */
/* SOCKS5 pieces shared by rps and hold */

static const uint8_t socks_greeting[3] = {5, 1, 0};
static uint8_t socks_request[10];

static void build_socks_request(const struct sockaddr_in *t)
{
    socks_request[0] = 5;
    socks_request[1] = 1; /* CONNECT */
    socks_request[2] = 0;
    socks_request[3] = 1; /* IPv4 */
    memcpy(socks_request + 4, &t->sin_addr.s_addr, 4);
    memcpy(socks_request + 8, &t->sin_port, 2);
}

/* Incremental reader of the method reply (2 bytes) or the CONNECT reply
 * (VER REP RSV ATYP ADDR PORT, variable length). */
struct socks_rx {
    uint8_t hdr[5];
    uint16_t got, need; /* need == 0: not known yet */
    uint8_t is_reply;
};

static void socks_rx_init(struct socks_rx *rx, int is_reply)
{
    memset(rx, 0, sizeof *rx);
    rx->is_reply = (uint8_t)is_reply;
    rx->need = is_reply ? 0 : 2;
}

/* Consumes bytes; returns 1 when complete and successful, 0 for more, -1 on
 * a bad or refused reply.  *used gets the bytes consumed. */
static int socks_rx_feed(struct socks_rx *rx, const uint8_t *p, size_t n, size_t *used)
{
    size_t i = 0;
    while (i < n) {
        if (rx->got < sizeof rx->hdr)
            rx->hdr[rx->got] = p[i];
        rx->got++;
        i++;
        if (!rx->is_reply) {
            if (rx->got == 2) {
                *used = i;
                return (rx->hdr[0] == 5 && rx->hdr[1] == 0) ? 1 : -1;
            }
            continue;
        }
        if (rx->got == 2 && (rx->hdr[0] != 5 || rx->hdr[1] != 0)) {
            *used = i;
            return -1;
        }
        if (rx->need == 0 && rx->got == 5) {
            switch (rx->hdr[3]) {
            case 1:
                rx->need = 4 + 4 + 2;
                break;
            case 4:
                rx->need = 4 + 16 + 2;
                break;
            case 3:
                rx->need = (uint16_t)(4 + 1 + rx->hdr[4] + 2);
                break;
            default:
                *used = i;
                return -1;
            }
        }
        if (rx->need && rx->got >= rx->need) {
            *used = i;
            return 1;
        }
    }
    *used = i;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* rps mode */

enum wstate { W_IDLE, W_CONNECTING, W_GREETING, W_REPLY, W_HEAD, W_BODY, W_CLOSING };

struct worker {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wgreet, wsocks, whttp;
    uv_timer_t timer;
    enum wstate state;
    int failed;
    uint64_t t_start;
    struct socks_rx rx;
    size_t head_len;
    int64_t body_left; /* -1: until EOF */
    uint64_t rx_bytes; /* HTTP bytes of this request */
    char head[HEAD_MAX];
};

static struct {
    struct worker *w;
    uv_timer_t end_timer;
    uint64_t t_begin, t_warm, t_end;
    int stopping;
    uint64_t ok, bytes, errs[E_COUNT], errs_warmup;
    char http_req[1400];
    size_t http_req_len;
} R;

static int in_window(uint64_t t)
{
    return t >= R.t_warm && !R.stopping;
}

static void w_on_close(uv_handle_t *h);

static void w_close(struct worker *w)
{
    if (w->state == W_CLOSING || w->state == W_IDLE)
        return;
    w->state = W_CLOSING;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->tcp, w_on_close);
}

static void w_fail(struct worker *w, enum err_kind k)
{
    if (w->state == W_CLOSING || w->state == W_IDLE)
        return;
    if (in_window(now_ns()))
        R.errs[k]++;
    else if (!R.stopping)
        R.errs_warmup++;
    w->failed = 1;
    w_close(w);
}

static void w_success(struct worker *w)
{
    uint64_t t = now_ns();
    if (in_window(t)) {
        R.ok++;
        R.bytes += w->rx_bytes;
        hist_add((t - w->t_start) / 1000u);
    }
    w->failed = 0;
    w_close(w);
}

static void w_arm(struct worker *w);
static void w_start(struct worker *w);

static void w_on_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->state == W_IDLE)
        w_start(w); /* end of the back-off after an error */
    else
        w_fail(w, E_TIMEOUT);
}

static void w_arm(struct worker *w)
{
    uv_timer_start(&w->timer, w_on_timer, ms(o.timeout), 0);
}

static void w_on_close(uv_handle_t *h)
{
    struct worker *w = h->data;
    w->state = W_IDLE;
    if (R.stopping)
        return;
    if (w->failed) /* back off a little so a dead front cannot spin us */
        uv_timer_start(&w->timer, w_on_timer, 10, 0);
    else
        w_start(w);
}

static void w_on_write(uv_write_t *req, int status)
{
    struct worker *w = req->data;
    if (status < 0 && status != UV_ECANCELED)
        w_fail(w, E_WRITE);
}

static int w_write(struct worker *w, uv_write_t *req, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    req->data = w;
    if (uv_write(req, (uv_stream_t *)&w->tcp, &b, 1, w_on_write) != 0) {
        w_fail(w, E_WRITE);
        return -1;
    }
    return 0;
}

static int parse_head(struct worker *w, size_t end)
{
    /* end: offset just past "\r\n\r\n" */
    int status = 0;
    if (end < 12 || strncmp(w->head, "HTTP/1.", 7) != 0)
        return -1;
    if (sscanf(w->head + 9, "%3d", &status) != 1 || status != 200)
        return -1;
    w->body_left = -1;
    const char *p = w->head;
    const char *lim = w->head + end;
    while (p < lim) {
        const char *nl = memchr(p, '\n', (size_t)(lim - p));
        if (!nl)
            break;
        if ((size_t)(nl - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            char num[32];
            size_t len = (size_t)(nl - (p + 15));
            if (len >= sizeof num)
                return -1;
            memcpy(num, p + 15, len);
            num[len] = '\0';
            char *e;
            long long v = strtoll(num, &e, 10);
            if (v < 0)
                return -1;
            w->body_left = v;
        }
        p = nl + 1;
    }
    return 0;
}

static void w_feed(struct worker *w, const uint8_t *p, size_t n)
{
    size_t used = 0;
    int r;
    switch (w->state) {
    case W_GREETING:
        r = socks_rx_feed(&w->rx, p, n, &used);
        if (r < 0 || (r == 1 && used != n)) {
            w_fail(w, E_SOCKS);
            return;
        }
        if (r == 1) {
            w->state = W_REPLY;
            socks_rx_init(&w->rx, 1);
            w_write(w, &w->wsocks, socks_request, sizeof socks_request);
        }
        return;
    case W_REPLY:
        r = socks_rx_feed(&w->rx, p, n, &used);
        if (r < 0 || (r == 1 && used != n)) {
            w_fail(w, E_SOCKS);
            return;
        }
        if (r == 1) {
            w->state = W_HEAD;
            w->head_len = 0;
            w->rx_bytes = 0;
            w_write(w, &w->whttp, R.http_req, R.http_req_len);
        }
        return;
    case W_HEAD: {
        size_t room = sizeof w->head - 1 - w->head_len;
        size_t take = n < room ? n : room;
        size_t old = w->head_len;
        memcpy(w->head + w->head_len, p, take);
        w->head_len += take;
        w->head[w->head_len] = '\0';
        size_t from = old > 3 ? old - 3 : 0;
        char *e = memmem(w->head + from, w->head_len - from, "\r\n\r\n", 4);
        if (!e) {
            if (w->head_len >= sizeof w->head - 1)
                w_fail(w, E_HTTP);
            return;
        }
        size_t end = (size_t)(e - w->head) + 4;
        if (parse_head(w, end) != 0) {
            w_fail(w, E_HTTP);
            return;
        }
        uint64_t got_body = (w->head_len - end) + (n - take);
        w->rx_bytes = w->head_len + (n - take);
        if (w->body_left >= 0) {
            w->body_left -= (int64_t)got_body;
            if (w->body_left <= 0) {
                w_success(w);
                return;
            }
        }
        w->state = W_BODY;
        return;
    }
    case W_BODY:
        w->rx_bytes += n;
        if (w->body_left >= 0) {
            w->body_left -= (int64_t)n;
            if (w->body_left <= 0)
                w_success(w);
        }
        return;
    default:
        return;
    }
}

static void w_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct worker *w = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && w->state == W_BODY && w->body_left < 0)
            w_success(w);
        else
            w_fail(w, nread == UV_EOF ? E_EOF : E_RESET);
        return;
    }
    w_feed(w, (const uint8_t *)buf->base, (size_t)nread);
}

static void w_on_connect(uv_connect_t *req, int status)
{
    struct worker *w = req->data;
    if (w->state != W_CONNECTING)
        return;
    if (status < 0) {
        w_fail(w, E_CONNECT);
        return;
    }
    if (uv_read_start((uv_stream_t *)&w->tcp, on_alloc, w_on_read) != 0) {
        w_fail(w, E_CONNECT);
        return;
    }
    w->state = W_GREETING;
    socks_rx_init(&w->rx, 0);
    w_write(w, &w->wgreet, socks_greeting, sizeof socks_greeting);
}

static void w_start(struct worker *w)
{
    if (R.stopping)
        return;
    w->failed = 0;
    if (uv_tcp_init(loop, &w->tcp) != 0) {
        R.errs[E_CONNECT]++;
        w->failed = 1;
        uv_timer_start(&w->timer, w_on_timer, 10, 0);
        return;
    }
    w->tcp.data = w;
    w->creq.data = w;
    w->state = W_CONNECTING;
    w->t_start = now_ns();
    w_arm(w);
    uv_tcp_nodelay(&w->tcp, 1);
    if (uv_tcp_connect(&w->creq, &w->tcp, (const struct sockaddr *)&o.socks, w_on_connect) != 0)
        w_fail(w, E_CONNECT);
}

static void r_on_end(uv_timer_t *t)
{
    R.t_end = now_ns();
    R.stopping = 1;
    for (int i = 0; i < o.concurrency; i++) {
        struct worker *w = &R.w[i];
        uv_timer_stop(&w->timer);
        if (w->state != W_IDLE && w->state != W_CLOSING) {
            w->state = W_CLOSING;
            uv_close((uv_handle_t *)&w->tcp, w_on_close);
        }
        uv_close((uv_handle_t *)&w->timer, NULL);
    }
    uv_close((uv_handle_t *)t, NULL);
}

static int run_rps(void)
{
    if (!o.have_socks || !o.have_target)
        die("rps needs --socks and --target");
    build_socks_request(&o.target);
    char host[32];
    uv_ip4_name(&o.target, host, sizeof host);
    int n = snprintf(R.http_req, sizeof R.http_req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: tunneld-bench-loadgen\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     o.path, host, ntohs(o.target.sin_port));
    if (n < 0 || (size_t)n >= sizeof R.http_req)
        die("request too long");
    R.http_req_len = (size_t)n;
    R.w = calloc((size_t)o.concurrency, sizeof *R.w);
    if (!R.w)
        die("out of memory");
    R.t_begin = now_ns();
    R.t_warm = R.t_begin + (uint64_t)(o.warmup * 1e9);
    uv_timer_init(loop, &R.end_timer);
    uv_timer_start(&R.end_timer, r_on_end, ms(o.warmup + o.duration), 0);
    for (int i = 0; i < o.concurrency; i++) {
        struct worker *w = &R.w[i];
        uv_timer_init(loop, &w->timer);
        w->timer.data = w;
        w->state = W_IDLE;
        w_start(w);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    double window = (double)(R.t_end - R.t_warm) / 1e9;
    if (window <= 0)
        window = o.duration;
    printf("{\"mode\":\"rps\",\"concurrency\":%d,\"warmup_s\":%.3f,\"duration_s\":%.3f,"
           "\"requests\":%" PRIu64 ",\"rps\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"max_ms\":%.3f,\"bytes\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"errors_by_kind\":",
           o.concurrency, o.warmup, window, R.ok, (double)R.ok / window, hist_pct_ms(0.50),
           hist_pct_ms(0.90), hist_pct_ms(0.99), (double)hist_max_us / 1000.0, R.bytes,
           sum_errors(R.errs));
    print_errors(R.errs);
    printf(",\"errors_warmup\":%" PRIu64 "}\n", R.errs_warmup);
    free(R.w);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* hold mode */

enum hstate { H_NEW, H_CONNECTING, H_GREETING, H_REPLY, H_PING, H_HELD, H_DEAD };

struct hconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t w1, w2, w3;
    uint64_t t_start;
    struct socks_rx rx;
    uint8_t state, got, inited;
};

static const char ping[4] = {'p', 'i', 'n', 'g'};

struct step_result {
    int target, held, errors, dropped, not_attempted;
    long rss_kib;
    long rss_by_pid[MAX_PIDS];
    double establish_s;
};

static struct {
    struct hconn *c;
    int total; /* last step's count: size of c[] */
    int step;  /* current step index */
    int launched, inflight, held, dropped, errors_total;
    int stop_launching, finished, timed_out, interrupted, settling;
    uint64_t errs[E_COUNT];
    uint64_t t_step, t_done;
    uv_timer_t sweep, settle, deadline, step_deadline;
    uv_signal_t sigint, sigterm;
    long rss_before;
    long rss_before_by_pid[MAX_PIDS];
    struct step_result res[MAX_STEPS];
    int nres;
} H;

static long rss_of(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    for (int i = 0; i < 200 && fgets(line, sizeof line, f); i++) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static long rss_sum(long *by_pid)
{
    long t = 0;
    for (int i = 0; i < o.npids; i++) {
        long v = rss_of(o.pids[i]);
        by_pid[i] = v;
        if (v < 0)
            return -1; /* a chain process died */
        t += v;
    }
    return t;
}

static void h_launch_more(void);
static void h_step_check(void);
static void h_finish(void);

static void h_settled(void)
{
    /* one connection fewer in flight; maybe the step is done */
    H.inflight--;
    h_launch_more();
    h_step_check();
}

static void h_fail(struct hconn *c, enum err_kind k)
{
    if (c->state == H_DEAD)
        return;
    if (c->state == H_HELD) {
        H.dropped++;
        H.held--;
    } else {
        H.errs[k]++;
        H.errors_total++;
        if (o.max_errors >= 0 && H.errors_total >= o.max_errors && !H.stop_launching) {
            H.stop_launching = 1;
            fprintf(stderr, "loadgen: %d errors, no more connections are opened\n", H.errors_total);
        }
    }
    int was_pending = c->state != H_HELD;
    c->state = H_DEAD;
    if (c->inited && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, NULL);
    if (was_pending)
        h_settled();
}

static void h_on_write(uv_write_t *req, int status)
{
    struct hconn *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        h_fail(c, E_WRITE);
}

static void h_write(struct hconn *c, uv_write_t *req, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    req->data = c;
    if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, h_on_write) != 0)
        h_fail(c, E_WRITE);
}

static void h_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *c = s->data;
    if (nread == 0 || c->state == H_DEAD)
        return;
    if (nread < 0) {
        h_fail(c, nread == UV_EOF ? E_EOF : E_RESET);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread, used = 0;
    int r;
    switch (c->state) {
    case H_GREETING:
        r = socks_rx_feed(&c->rx, p, n, &used);
        if (r < 0 || (r == 1 && used != n)) {
            h_fail(c, E_SOCKS);
            return;
        }
        if (r == 1) {
            c->state = H_REPLY;
            socks_rx_init(&c->rx, 1);
            h_write(c, &c->w2, socks_request, sizeof socks_request);
        }
        return;
    case H_REPLY:
        r = socks_rx_feed(&c->rx, p, n, &used);
        if (r < 0 || (r == 1 && used != n)) {
            h_fail(c, E_SOCKS);
            return;
        }
        if (r == 1) {
            c->state = H_PING;
            c->got = 0;
            h_write(c, &c->w3, ping, sizeof ping);
        }
        return;
    case H_PING:
        for (size_t i = 0; i < n; i++) {
            if (c->got >= sizeof ping || p[i] != (uint8_t)ping[c->got]) {
                h_fail(c, E_SOCKS);
                return;
            }
            c->got++;
        }
        if (c->got == sizeof ping) {
            c->state = H_HELD;
            H.held++;
            h_settled();
        }
        return;
    case H_HELD: /* an idle connection must stay silent */
        h_fail(c, E_SOCKS);
        return;
    default:
        return;
    }
}

static void h_on_connect(uv_connect_t *req, int status)
{
    struct hconn *c = req->data;
    if (c->state != H_CONNECTING)
        return;
    if (status < 0) {
        h_fail(c, E_CONNECT);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, h_on_read) != 0) {
        h_fail(c, E_CONNECT);
        return;
    }
    c->state = H_GREETING;
    socks_rx_init(&c->rx, 0);
    h_write(c, &c->w1, socks_greeting, sizeof socks_greeting);
}

static void h_start(struct hconn *c)
{
    H.inflight++;
    c->t_start = now_ns();
    if (uv_tcp_init(loop, &c->tcp) != 0) {
        c->state = H_CONNECTING;
        h_fail(c, E_CONNECT);
        return;
    }
    c->inited = 1;
    c->tcp.data = c;
    c->creq.data = c;
    c->state = H_CONNECTING;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&o.socks, h_on_connect) != 0)
        h_fail(c, E_CONNECT);
}

static void h_launch_more(void)
{
    static int busy; /* a connect that fails at once re-enters through h_fail */
    if (H.finished || H.settling || busy)
        return;
    busy = 1;
    int target = o.steps[H.step];
    /* bounded: at most target - launched iterations */
    while (!H.stop_launching && H.inflight < o.parallel && H.launched < target)
        h_start(&H.c[H.launched++]);
    busy = 0;
}

static void h_record_step(void)
{
    struct step_result *sr = &H.res[H.nres++];
    sr->target = o.steps[H.step];
    sr->held = H.held;
    sr->errors = H.errors_total;
    sr->dropped = H.dropped;
    sr->not_attempted = sr->target - H.launched;
    sr->rss_kib = rss_sum(sr->rss_by_pid);
    sr->establish_s = (double)((H.t_done ? H.t_done : now_ns()) - H.t_step) / 1e9;
}

static void h_on_settle(uv_timer_t *t)
{
    (void)t;
    H.settling = 0;
    h_record_step();
    if (H.step + 1 >= o.nsteps || H.stop_launching) {
        /* steps not reached (after too many errors) are recorded as they stand */
        while (H.step + 1 < o.nsteps) {
            H.step++;
            h_record_step();
        }
        h_finish();
        return;
    }
    H.step++;
    H.t_step = now_ns();
    H.t_done = 0;
    h_launch_more();
    h_step_check();
}

static void h_on_step_deadline(uv_timer_t *t);

static void h_step_check(void)
{
    if (H.finished || H.settling)
        return;
    int target = o.steps[H.step];
    if (H.inflight == 0 && (H.launched >= target || H.stop_launching)) {
        H.settling = 1;
        H.t_done = now_ns();
        uv_timer_stop(&H.step_deadline);
        uv_timer_start(&H.settle, h_on_settle, ms(o.settle), 0);
    } else if (!uv_is_active((uv_handle_t *)&H.step_deadline)) {
        uv_timer_start(&H.step_deadline, h_on_step_deadline, ms(o.step_time), 0);
    }
}

static void h_on_step_deadline(uv_timer_t *t)
{
    (void)t;
    if (!H.stop_launching)
        fprintf(stderr, "loadgen: step %d not done within %.0fs; no more connections are opened\n",
                o.steps[H.step], o.step_time);
    H.stop_launching = 1;
    /* in-flight connections still end by their own timeout (sweep) */
}

static void h_on_sweep(uv_timer_t *t)
{
    (void)t;
    uint64_t now = now_ns();
    uint64_t lim = (uint64_t)(o.timeout * 1e9);
    int n = H.launched; /* bounded by the array */
    for (int i = 0; i < n; i++) {
        struct hconn *c = &H.c[i];
        if (c->state >= H_CONNECTING && c->state < H_HELD && now - c->t_start > lim)
            h_fail(c, E_TIMEOUT);
    }
}

static void h_close_cb_noop(uv_handle_t *h)
{
    (void)h;
}

static void h_finish(void)
{
    if (H.finished)
        return;
    H.finished = 1;
    uv_timer_stop(&H.sweep);
    uv_timer_stop(&H.settle);
    uv_timer_stop(&H.deadline);
    uv_timer_stop(&H.step_deadline);

    printf("{\"mode\":\"hold\",\"pids\":[");
    for (int i = 0; i < o.npids; i++)
        printf("%s%d", i ? "," : "", o.pids[i]);
    printf("],\"nofile\":%ld,\"rss_before_kib\":%ld,\"rss_before_by_pid\":[", nofile_limit(),
           H.rss_before);
    for (int i = 0; i < o.npids; i++)
        printf("%s%ld", i ? "," : "", H.rss_before_by_pid[i]);
    printf("],\"steps\":[");
    for (int s = 0; s < H.nres; s++) {
        struct step_result *sr = &H.res[s];
        double per = (sr->held > 0 && sr->rss_kib >= 0 && H.rss_before >= 0)
                         ? (double)(sr->rss_kib - H.rss_before) / sr->held
                         : -1;
        printf("%s{\"target\":%d,\"held\":%d,\"errors\":%d,\"dropped\":%d,\"not_attempted\":%d,"
               "\"rss_kib\":%ld,\"per_conn_kib\":%.3f,\"establish_s\":%.3f,\"rss_by_pid\":[",
               s ? "," : "", sr->target, sr->held, sr->errors, sr->dropped, sr->not_attempted,
               sr->rss_kib, per, sr->establish_s);
        for (int i = 0; i < o.npids; i++)
            printf("%s%ld", i ? "," : "", sr->rss_by_pid[i]);
        printf("]}");
    }
    printf("],\"errors_by_kind\":");
    print_errors(H.errs);
    printf(",\"timed_out\":%s,\"interrupted\":%s}\n", H.timed_out ? "true" : "false",
           H.interrupted ? "true" : "false");
    fflush(stdout);

    for (int i = 0; i < H.launched; i++) {
        struct hconn *c = &H.c[i];
        if (c->inited && !uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, h_close_cb_noop);
    }
    uv_close((uv_handle_t *)&H.sweep, NULL);
    uv_close((uv_handle_t *)&H.settle, NULL);
    uv_close((uv_handle_t *)&H.deadline, NULL);
    uv_close((uv_handle_t *)&H.step_deadline, NULL);
    uv_close((uv_handle_t *)&H.sigint, NULL);
    uv_close((uv_handle_t *)&H.sigterm, NULL);
}

static void h_on_deadline(uv_timer_t *t)
{
    (void)t;
    H.timed_out = 1;
    if (H.nres < o.nsteps)
        h_record_step();
    h_finish();
}

static void h_on_signal(uv_signal_t *s, int sig)
{
    (void)s;
    (void)sig;
    H.interrupted = 1;
    if (H.nres < o.nsteps)
        h_record_step();
    h_finish();
}

static int run_hold(void)
{
    if (!o.have_socks || !o.have_target)
        die("hold needs --socks and --target (an echo server: loadgen echo)");
    build_socks_request(&o.target);
    H.total = o.steps[o.nsteps - 1];
    H.c = calloc((size_t)H.total, sizeof *H.c);
    if (!H.c)
        die("out of memory for %d connections", H.total);
    H.rss_before = rss_sum(H.rss_before_by_pid);
    uv_timer_init(loop, &H.sweep);
    uv_timer_init(loop, &H.settle);
    uv_timer_init(loop, &H.deadline);
    uv_timer_init(loop, &H.step_deadline);
    uv_signal_init(loop, &H.sigint);
    uv_signal_init(loop, &H.sigterm);
    uv_signal_start(&H.sigint, h_on_signal, SIGINT);
    uv_signal_start(&H.sigterm, h_on_signal, SIGTERM);
    uv_timer_start(&H.sweep, h_on_sweep, 100, 100);
    uv_timer_start(&H.deadline, h_on_deadline, ms(o.max_time), 0);
    H.t_step = now_ns();
    h_launch_more();
    h_step_check();
    uv_run(loop, UV_RUN_DEFAULT);
    free(H.c);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* echo mode */

struct econn {
    uv_tcp_t tcp;
    uv_write_t w;
    char buf[16];
    uint8_t busy, open;
};

static struct {
    uv_tcp_t lsock;
    struct econn *c;
    int n;
    uint64_t accepted, refused;
    uv_timer_t deadline;
    uv_signal_t sigint, sigterm;
    int stopping;
} E;

static void e_close(struct econn *c)
{
    if (c->open && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, NULL);
    c->open = 0;
}

static void e_on_write(uv_write_t *req, int status)
{
    struct econn *c = req->data;
    c->busy = 0;
    if (status < 0 && status != UV_ECANCELED)
        e_close(c);
}

static void e_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct econn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        e_close(c);
        return;
    }
    if (c->busy)
        return; /* a ping at a time: drop the rest (never happens in hold) */
    size_t n = (size_t)nread < sizeof c->buf ? (size_t)nread : sizeof c->buf;
    memcpy(c->buf, buf->base, n);
    uv_buf_t b = uv_buf_init(c->buf, (unsigned)n);
    c->w.data = c;
    c->busy = 1;
    if (uv_write(&c->w, s, &b, 1, e_on_write) != 0) {
        c->busy = 0;
        e_close(c);
    }
}

static void e_on_conn(uv_stream_t *server, int status)
{
    if (status < 0 || E.stopping)
        return;
    if (E.n >= o.max_conns) {
        /* the table is full: accept and drop, so the backlog cannot spin us */
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (!tmp)
            return;
        uv_tcp_init(loop, tmp);
        if (uv_accept(server, (uv_stream_t *)tmp) == 0)
            E.refused++;
        uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        return;
    }
    struct econn *c = &E.c[E.n];
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, NULL);
        return;
    }
    E.n++;
    E.accepted++;
    c->open = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, e_on_read) != 0)
        e_close(c);
}

static void e_stop(void)
{
    if (E.stopping)
        return;
    E.stopping = 1;
    for (int i = 0; i < E.n; i++)
        e_close(&E.c[i]);
    uv_close((uv_handle_t *)&E.lsock, NULL);
    uv_close((uv_handle_t *)&E.deadline, NULL);
    uv_close((uv_handle_t *)&E.sigint, NULL);
    uv_close((uv_handle_t *)&E.sigterm, NULL);
}

static void e_on_deadline(uv_timer_t *t)
{
    (void)t;
    e_stop();
}

static void e_on_signal(uv_signal_t *s, int sig)
{
    (void)s;
    (void)sig;
    e_stop();
}

static int run_echo(void)
{
    if (!o.have_listen)
        die("echo needs --listen");
    E.c = calloc((size_t)o.max_conns, sizeof *E.c);
    if (!E.c)
        die("out of memory");
    uv_tcp_init(loop, &E.lsock);
    int r = uv_tcp_bind(&E.lsock, (const struct sockaddr *)&o.listen, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&E.lsock, 4096, e_on_conn);
    if (r != 0)
        die("listen: %s", uv_strerror(r));
    struct sockaddr_in sa;
    int len = sizeof sa;
    uv_tcp_getsockname(&E.lsock, (struct sockaddr *)&sa, &len);
    uv_timer_init(loop, &E.deadline);
    uv_timer_start(&E.deadline, e_on_deadline, ms(o.max_time), 0);
    uv_signal_init(loop, &E.sigint);
    uv_signal_init(loop, &E.sigterm);
    uv_signal_start(&E.sigint, e_on_signal, SIGINT);
    uv_signal_start(&E.sigterm, e_on_signal, SIGTERM);
    printf("{\"mode\":\"echo\",\"port\":%d,\"nofile\":%ld}\n", ntohs(sa.sin_port), nofile_limit());
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    fprintf(stderr, "loadgen echo: accepted %" PRIu64 ", refused %" PRIu64 "\n", E.accepted,
            E.refused);
    free(E.c);
    return 0;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    loop = uv_default_loop();
    int rc = 2;
    if (!strcmp(o.mode, "rps"))
        rc = run_rps();
    else if (!strcmp(o.mode, "hold"))
        rc = run_hold();
    else if (!strcmp(o.mode, "echo"))
        rc = run_echo();
    else
        usage();
    uv_run(loop, UV_RUN_DEFAULT); /* finish pending close callbacks */
    if (uv_loop_close(loop) != 0)
        fprintf(stderr, "loadgen: loop not closed cleanly\n");
    return rc;
}
