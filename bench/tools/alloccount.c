/* A counting LD_PRELOAD allocator shim for profiling tunneld (see
 * docs/performance.md, "Profiles"): it counts malloc/calloc/realloc/
 * posix_memalign/aligned_alloc calls and frees, and keeps the live bytes
 * (malloc_usable_size) and the calls by power-of-two size class.  On
 * SIGUSR2, and at exit,
 * it appends one line of counters and the live histogram to
 * $ALLOCCOUNT_OUT (default /tmp/alloccount.PID).
 *
 *   cc -O2 -shared -fPIC -o alloccount.so bench/tools/alloccount.c -ldl
 *   LD_PRELOAD=./alloccount.so tunneld --config ...; kill -USR2 PID
 *
 * Single counters without locks: tunneld allocates on its loop thread (the
 * resolver's threads rarely), and a profile does not need exact atomics. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);

static unsigned long long n_alloc, n_free, n_realloc;
static long long live_bytes, live_by_class[40];
static unsigned long long calls_by_class[40];
static char boot[4096];
static size_t boot_used;
static int resolving;

static int cls(size_t n)
{
    int c = 0;
    while (c < 39 && ((size_t)1 << c) < n)
        c++;
    return c;
}

static void track(void *p, int sign)
{
    size_t n;
    if (!p || ((char *)p >= boot && (char *)p < boot + sizeof(boot)))
        return;
    n = malloc_usable_size(p);
    if (sign > 0)
        calls_by_class[cls(n)]++;
    live_bytes += sign * (long long)n;
    live_by_class[cls(n)] += sign * (long long)n;
}

static void resolve(void)
{
    if (real_malloc || resolving)
        return;
    resolving = 1;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    resolving = 0;
}

static void dump(void)
{
    char path[256], line[2048];
    const char *out = getenv("ALLOCCOUNT_OUT");
    int fd, n;

    if (out)
        snprintf(path, sizeof(path), "%s.%d", out, (int)getpid());
    else
        snprintf(path, sizeof(path), "/tmp/alloccount.%d", (int)getpid());
    n = snprintf(line, sizeof(line), "allocs %llu frees %llu reallocs %llu live %lld classes",
                 n_alloc, n_free, n_realloc, live_bytes);
    for (int c = 0; c < 40 && n < (int)sizeof(line) - 40; c++)
        if (live_by_class[c])
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %zu:%lld", (size_t)1 << c,
                          live_by_class[c]);
    n += snprintf(line + n, sizeof(line) - (size_t)n, " calls");
    for (int c = 0; c < 40 && n < (int)sizeof(line) - 40; c++)
        if (calls_by_class[c])
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %zu:%llu", (size_t)1 << c,
                          calls_by_class[c]);
    line[n++] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        (void)!write(fd, line, (size_t)n);
        close(fd);
    }
}

static void on_usr2(int sig)
{
    (void)sig;
    dump();
}

__attribute__((constructor)) static void init(void)
{
    resolve();
    signal(SIGUSR2, on_usr2);
}

__attribute__((destructor)) static void fini(void)
{
    dump();
}

void *malloc(size_t n)
{
    void *p;
    resolve();
    if (!real_malloc)
        return NULL;
    p = real_malloc(n);
    n_alloc++;
    track(p, 1);
    return p;
}

void *calloc(size_t a, size_t b)
{
    void *p;
    if (!real_calloc) {
        /* dlsym itself callocs: serve it from a static buffer. */
        size_t n = (a * b + 15) & ~(size_t)15;
        if (boot_used + n > sizeof(boot))
            return NULL;
        p = boot + boot_used;
        boot_used += n;
        memset(p, 0, n);
        return p;
    }
    p = real_calloc(a, b);
    n_alloc++;
    track(p, 1);
    return p;
}

void *realloc(void *old, size_t n)
{
    void *p;
    resolve();
    if ((char *)old >= boot && (char *)old < boot + sizeof(boot)) {
        p = malloc(n);
        if (p)
            memcpy(p, old, n < sizeof(boot) ? n : sizeof(boot));
        return p;
    }
    track(old, -1);
    p = real_realloc(old, n);
    n_realloc++;
    if (!old)
        n_alloc++;
    track(p ? p : (n ? old : NULL), 1);
    return p;
}

void free(void *p)
{
    if (!p || ((char *)p >= boot && (char *)p < boot + sizeof(boot)))
        return;
    resolve();
    track(p, -1);
    n_free++;
    real_free(p);
}

int posix_memalign(void **out, size_t al, size_t n)
{
    int r;
    resolve();
    r = real_posix_memalign(out, al, n);
    if (r == 0) {
        n_alloc++;
        track(*out, 1);
    }
    return r;
}

void *aligned_alloc(size_t al, size_t n)
{
    void *p;
    resolve();
    p = real_aligned_alloc(al, n);
    n_alloc++;
    track(p, 1);
    return p;
}
