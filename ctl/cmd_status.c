/* tunnelctl status: the daemon, its listeners, tunnels and servers. */
#include "subcommands.h"

#include "client.h"
#include "out.h"
#include "records.h"

#include <stdio.h>
#include <string.h>

static void status_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s status [--json]\n"
            "Show the running tunneld: version, pid, uptime, config, connections, and a table\n"
            "each of its listeners, tunnels and servers.  Needs the daemon (exit 3 without it).\n",
            PROG_NAME);
}

static const char *status_get(const struct ctl_msg *m, const char *key, char *buf, size_t cap,
                              enum ctl_ftype t)
{
    ctl_fmt_field(buf, cap, t, ctl_top_get(m, ctl_status_recs, CTL_NRECS(ctl_status_recs), key));
    return buf;
}

int status_main(int argc, const char *argv[])
{
    struct ctl_buf req;
    struct ctl_msg rep;
    char a[512], b[512], c[64];
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, NULL, NULL, 0, 0, status_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ctl_req(&req, "status");
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        ctl_render_json(&rep, ctl_status_top, ctl_status_recs, CTL_NRECS(ctl_status_recs));
        cj_obj_end();
        cj_done();
        goto out;
    }
    printf("tunneld %s, pid %s, ", status_get(&rep, "version", a, sizeof(a), CTL_FT_STR),
           status_get(&rep, "pid", b, sizeof(b), CTL_FT_STR));
    printf("up %s\n", status_get(&rep, "uptime_ms", c, sizeof(c), CTL_FT_MS));
    printf("config:      %s (generation %s)\n",
           status_get(&rep, "config", a, sizeof(a), CTL_FT_STR),
           status_get(&rep, "generation", b, sizeof(b), CTL_FT_STR));
    printf("state_dir:   %s\n", status_get(&rep, "state_dir", a, sizeof(a), CTL_FT_STR));
    printf("connections: %s active, ", status_get(&rep, "conns_active", a, sizeof(a), CTL_FT_NUM));
    printf("%s total\n", status_get(&rep, "conns_total", a, sizeof(a), CTL_FT_NUM));
    if (rep.n > 0) {
        putchar('\n');
        ctl_render_tables(&rep, ctl_status_recs, CTL_NRECS(ctl_status_recs), false, stdout);
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
