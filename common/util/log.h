/* Logging: one sink, levels checked before any formatting, untrusted text
 * cleaned with log_safe().  common/ code may log, but parsers never do. */
#ifndef TD_LOG_H_
#define TD_LOG_H_

#include <stdarg.h>
#include <stddef.h>

enum td_log_level {
    TD_LOG_ERROR = 0,
    TD_LOG_WARN = 1,
    TD_LOG_INFO = 2,
    TD_LOG_DEBUG = 3,
    TD_LOG_TRACE = 4,
};

extern int td_log_level_current;

#define TD_LOG(lvl, comp, ...)                                                                     \
    do {                                                                                           \
        if ((lvl) <= td_log_level_current)                                                         \
            td_log_write((lvl), (comp), __VA_ARGS__);                                              \
    } while (0)

#define LOG_ERROR(comp, ...) TD_LOG(TD_LOG_ERROR, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...)  TD_LOG(TD_LOG_WARN, comp, __VA_ARGS__)
#define LOG_INFO(comp, ...)  TD_LOG(TD_LOG_INFO, comp, __VA_ARGS__)
#define LOG_DEBUG(comp, ...) TD_LOG(TD_LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_TRACE(comp, ...) TD_LOG(TD_LOG_TRACE, comp, __VA_ARGS__)

#if defined(__GNUC__)
#define TD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TD_PRINTF(a, b)
#endif

void td_log_write(int level, const char *comp, const char *fmt, ...) TD_PRINTF(3, 4);
void td_log_vwrite(int level, const char *comp, const char *fmt, va_list ap);

void td_log_set_level(int level);
/* "-" means stderr.  Returns 0 or a TD_E* code; the old sink stays on error. */
int td_log_open(const char *path);
/* Reopen the current file (after logrotate moved it). */
int td_log_reopen(void);
void td_log_close(void);

/* Parse "error|warn|info|debug|trace"; returns the level or TD_EINVAL. */
int td_log_level_parse(const char *s);
const char *td_log_level_name(int level);

/* Copy untrusted text (hostnames, headers, user names from the network) into
 * out, replacing control and non-ASCII bytes with '?' and truncating with
 * "..." so that a peer cannot forge log lines or flood them. */
const char *td_log_safe(char *out, size_t outsz, const char *in, size_t inlen);

#endif
