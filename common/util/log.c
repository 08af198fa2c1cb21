#include "util/log.h"

#include "util/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int td_log_level_current = TD_LOG_INFO;

static FILE *td_log_fp;   /* NULL means stderr */
static char *td_log_path; /* NULL means stderr */

static const char *const td_log_names[] = {"error", "warn", "info", "debug", "trace"};

void td_log_set_level(int level)
{
    if (level >= TD_LOG_ERROR && level <= TD_LOG_TRACE)
        td_log_level_current = level;
}

int td_log_level_parse(const char *s)
{
    for (int i = 0; i <= TD_LOG_TRACE; i++)
        if (strcmp(s, td_log_names[i]) == 0)
            return i;
    return TD_EINVAL;
}

const char *td_log_level_name(int level)
{
    if (level < TD_LOG_ERROR || level > TD_LOG_TRACE)
        return "?";
    return td_log_names[level];
}

void td_log_vwrite(int level, const char *comp, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;
    FILE *out = td_log_fp ? td_log_fp : stderr;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s [%s] ", ts.tv_nsec / 1000000L,
                 td_log_level_name(level), comp);
    if (r > 0)
        n += (size_t)r;
    if (n < sizeof(line)) {
        r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        if (r > 0)
            n += (size_t)r;
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One fwrite per line so that lines from a crash handler or a second
     * process sharing the file do not interleave mid-line. */
    fwrite(line, 1, n, out);
    fflush(out);
}

void td_log_write(int level, const char *comp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td_log_vwrite(level, comp, fmt, ap);
    va_end(ap);
}

int td_log_open(const char *path)
{
    FILE *fp;
    char *copy;

    if (!path || strcmp(path, "-") == 0) {
        td_log_close();
        return 0;
    }
    fp = fopen(path, "a");
    if (!fp)
        return errno == EACCES ? TD_EACCES : TD_EIO;
    copy = strdup(path);
    if (!copy) {
        fclose(fp);
        return TD_ENOMEM;
    }
    td_log_close();
    td_log_fp = fp;
    td_log_path = copy;
    return 0;
}

int td_log_reopen(void)
{
    FILE *fp;
    if (!td_log_path)
        return 0;
    fp = fopen(td_log_path, "a");
    if (!fp)
        return TD_EIO;
    fclose(td_log_fp);
    td_log_fp = fp;
    return 0;
}

void td_log_close(void)
{
    if (td_log_fp)
        fclose(td_log_fp);
    td_log_fp = NULL;
    free(td_log_path);
    td_log_path = NULL;
}

const char *td_log_safe(char *out, size_t outsz, const char *in, size_t inlen)
{
    size_t o = 0;
    if (outsz == 0)
        return "";
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (o + 1 >= outsz) {
            if (outsz >= 4)
                memcpy(out + outsz - 4, "...", 3), o = outsz - 1;
            break;
        }
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[o] = '\0';
    return out;
}
