/* POSIX front end: arguments, signals, then daemon_run(). */
#include "core/daemon.h"
#include "kinds.h"

#include "config/config.h"
#include "util/error.h"
#include "util/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONFIG "/etc/tunneld/tunneld.yaml"

static uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;

static void on_signal(uv_signal_t *h, int signum)
{
    struct td_daemon *d = h->data;
    switch (signum) {
    case SIGTERM:
    case SIGINT:
        LOG_INFO("main", "received %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        daemon_request(d, DAEMON_REQ_STOP);
        break;
    case SIGUSR1:
        daemon_request(d, DAEMON_REQ_REOPEN_LOGS);
        break;
    case SIGHUP:
        LOG_INFO("main", "received SIGHUP: reloading the configuration");
        daemon_request(d, DAEMON_REQ_RELOAD);
        break;
    default:
        break;
    }
}

static void posix_start(struct td_daemon *d)
{
    uv_signal_t *hs[] = {&sig_term, &sig_int, &sig_hup, &sig_usr1};
    int nums[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        uv_signal_init(d->loop, hs[i]);
        hs[i]->data = d;
        uv_signal_start(hs[i], on_signal, nums[i]);
    }
}

static void posix_stop(struct td_daemon *d)
{
    uv_signal_t *hs[] = {&sig_term, &sig_int, &sig_hup, &sig_usr1};
    (void)d;
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
        if (hs[i]->loop && !uv_is_closing((uv_handle_t *)hs[i]))
            uv_close((uv_handle_t *)hs[i], NULL);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: tunneld [--config FILE] [--log-level LEVEL]\n"
                 "       tunneld --check-config FILE\n"
                 "       tunneld --version\n"
                 "\n"
                 "  -c, --config FILE        run with this config (default " DEFAULT_CONFIG ")\n"
                 "  -t, --check-config FILE  validate FILE, print every error, and exit\n"
                 "  -l, --log-level LEVEL    override log.level (error|warn|info|debug|trace)\n"
                 "  -V, --version            print the version and exit\n");
}

static int check_config(const char *path)
{
    struct td_config *cfg = NULL;
    struct cfg_errors errs = {0};
    int r = cfg_load_file(path, &cfg, &errs);
    if (r != 0) {
        if (errs.n == 0)
            fprintf(stderr, "%s: %s\n", path, td_strerror(r));
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        fprintf(stderr, "%s: configuration has %zu error%s\n", path, errs.n,
                errs.n == 1 ? "" : "s");
        cfg_errors_free(&errs);
        return 1;
    }
    printf("%s: ok (%zu listeners, %zu users)\n", path, cfg->n_listeners, cfg->n_users);
    cfg_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon_opts opts = {DEFAULT_CONFIG, -1, &td_builtin_kinds, posix_start, posix_stop};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (!v)
                goto missing;
            opts.config_path = v;
            i++;
        } else if (!strncmp(a, "--config=", 9)) {
            opts.config_path = a + 9;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--check-config")) {
            if (!v)
                goto missing;
            return check_config(v);
        } else if (!strncmp(a, "--check-config=", 15)) {
            return check_config(a + 15);
        } else if (!strcmp(a, "-l") || !strcmp(a, "--log-level")) {
            if (!v)
                goto missing;
            opts.log_level_override = td_log_level_parse(v);
            if (opts.log_level_override < 0) {
                fprintf(stderr, "tunneld: unknown log level '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("tunneld %s\n", TUNNELD_VERSION);
            return 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tunneld: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        continue;
    missing:
        fprintf(stderr, "tunneld: %s needs a value\n", a);
        return 2;
    }
    /* Writes to a closed socket must fail with EPIPE, not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    return daemon_run(&opts);
}
