/* tunnelctl's side of the control protocol; see client.h. */
#include "client.h"

#include "ipc.h"
#include "out.h"
#include "subcommands.h"
#include "util/error.h"
#include "util/fs.h"

#include <stdlib.h>
#include <string.h>

uint64_t ctl_timeout_ms = CTL_DEFAULT_TIMEOUT_MS;

static struct td_config *loaded_cfg;
static bool cfg_tried;
static int cfg_result;

int ctl_config(const struct td_config **cfg)
{
    struct cfg_errors errs = {NULL, 0};
    const char *path = ctl_config_path;
    int rc;

    *cfg = NULL;
    if (cfg_tried) {
        *cfg = loaded_cfg;
        return cfg_result;
    }
    cfg_tried = true;
    if (!path) {
        bool exists = false;
        path = ctl_ipc_default_config();
        if (td_fs_exists(path, &exists) != 0 || !exists)
            return 0; /* no config file: the defaults */
    }
    rc = cfg_load_file(path, &loaded_cfg, &errs);
    if (rc != 0) {
        for (size_t i = 0; i < errs.n; i++)
            ctl_err("%s", errs.msgs[i]);
        if (errs.n == 0)
            ctl_err("%s: %s", path, td_strerror(rc));
        else
            ctl_err("%s: configuration has %zu error%s", path, errs.n, errs.n == 1 ? "" : "s");
        ctl_err_status(rc);
        cfg_errors_free(&errs);
        cfg_result = CTL_EXIT_FAIL;
        return cfg_result;
    }
    *cfg = loaded_cfg;
    return 0;
}

int ctl_config_required(const struct td_config **cfg, const char *why)
{
    int ret = ctl_config(cfg);

    if (ret == 0 && !*cfg) {
        ctl_err("%s: no config file (pass --config FILE; %s does not exist)", why,
                ctl_ipc_default_config());
        ret = CTL_EXIT_FAIL;
    }
    return ret;
}

int ctl_endpoint(const char **path)
{
    const struct td_config *cfg;
    int ret;

    *path = ctl_socket_path;
    if (*path)
        return 0;
    ret = ctl_config(&cfg);
    if (ret != 0)
        return ret;
    *path = cfg && cfg->control.socket ? cfg->control.socket : ctl_ipc_default_endpoint();
    return 0;
}

void ctl_client_cleanup(void)
{
    cfg_free(loaded_cfg);
    loaded_cfg = NULL;
    cfg_tried = false;
}

int ctl_exit_for_status(int status)
{
    if (status == 0)
        return CTL_EXIT_OK;
    return status == TD_EACCES ? CTL_EXIT_DENIED : CTL_EXIT_FAIL;
}

struct ctl_session {
    struct ctl_ipc *ipc;
    const char *path;
    char *buf; /* what was read and not yet used */
    size_t len, cap;
};

static void ctl_fmt_timeout(char *out, size_t cap)
{
    ctl_fmt_ms(out, cap, ctl_timeout_ms);
}

int ctl_open(struct ctl_session **out, bool quiet_absent)
{
    struct ctl_session *s = NULL;
    const char *path, *why = NULL;
    char tmo[32];
    int ret, rc;

    *out = NULL;
    ret = ctl_endpoint(&path);
    if (ret != 0)
        return ret;
    s = calloc(1, sizeof(*s));
    if (!s) {
        ctl_err("%s", td_strerror(TD_ENOMEM));
        return CTL_EXIT_FAIL;
    }
    s->path = path;
    rc = ctl_ipc_connect(path, ctl_ipc_now_ms() + ctl_timeout_ms, &s->ipc, &why);
    if (rc == 0) {
        *out = s;
        return 0;
    }
    free(s);
    ctl_err_status(rc);
    switch (rc) {
    case TD_ENOTFOUND:
    case TD_ECONNREFUSED:
        if (!quiet_absent)
            ctl_err("tunneld is not running (%s: %s)", path,
                    rc == TD_ENOTFOUND ? "no such socket" : "connection refused");
        return CTL_EXIT_NOT_RUNNING;
    case TD_EACCES:
        ctl_err("%s: permission denied (the control socket admits root, tunneld's user and "
                "the members of control.group)",
                path);
        return CTL_EXIT_DENIED;
    case TD_EPROTO:
        ctl_err("%s: %s; refusing to talk to it", path, why ? why : "not the daemon's endpoint");
        return CTL_EXIT_FAIL;
    case TD_ETIMEDOUT:
        ctl_fmt_timeout(tmo, sizeof(tmo));
        ctl_err("%s: no connection within %s", path, tmo);
        return CTL_EXIT_FAIL;
    default:
        ctl_err("%s: %s", path, why ? why : td_strerror(rc));
        return CTL_EXIT_FAIL;
    }
}

void ctl_close(struct ctl_session *s)
{
    if (!s)
        return;
    ctl_ipc_close(s->ipc);
    /* Replies can hold keys (user-show). */
    if (s->buf)
        memset(s->buf, 0, s->cap);
    free(s->buf);
    free(s);
}

void ctl_req(struct ctl_buf *b, const char *command)
{
    ctl_buf_init(b, CTL_MAX_REQUEST);
    ctl_buf_begin(b);
    ctl_buf_add(b, "command", command);
}

/* Read until one whole reply is in s->buf; *msglen is its length. */
static int ctl_read_reply(struct ctl_session *s, uint64_t deadline, int send_rc, size_t *msglen)
{
    size_t scanned = 0, got;
    char tmo[32];
    int rc;

    for (;;) {
        rc = ctl_msg_frame(s->buf ? s->buf : "", s->len, CTL_MAX_REPLY, &scanned, msglen);
        if (rc == 0)
            return 0;
        if (rc == TD_ETOOBIG) {
            ctl_err("the reply from tunneld is larger than %u bytes; giving up",
                    (unsigned)CTL_MAX_REPLY);
            ctl_err_status(rc);
            return CTL_EXIT_FAIL;
        }
        if (s->len == s->cap) {
            size_t ncap = s->cap ? s->cap * 2 : 16384;
            char *nb;
            if (ncap > CTL_MAX_REPLY)
                ncap = CTL_MAX_REPLY;
            nb = realloc(s->buf, ncap);
            if (!nb) {
                ctl_err("%s", td_strerror(TD_ENOMEM));
                return CTL_EXIT_FAIL;
            }
            s->buf = nb;
            s->cap = ncap;
        }
        rc = ctl_ipc_recv(s->ipc, s->buf + s->len, s->cap - s->len, deadline, &got);
        if (rc == TD_ETIMEDOUT) {
            ctl_fmt_timeout(tmo, sizeof(tmo));
            ctl_err("no reply from tunneld within %s; giving up", tmo);
            ctl_err_status(rc);
            return CTL_EXIT_FAIL;
        }
        if (rc == 0 && got == 0) {
            ctl_err("tunneld closed the connection %s",
                    send_rc != 0 ? "before taking the request" : "without a complete reply");
            ctl_err_status(send_rc != 0 ? send_rc : TD_EEOF);
            return CTL_EXIT_FAIL;
        }
        if (rc != 0) {
            ctl_err("reading the reply from %s: %s", s->path, td_strerror(rc));
            ctl_err_status(rc);
            return CTL_EXIT_FAIL;
        }
        s->len += got;
    }
}

int ctl_exchange(struct ctl_session *s, struct ctl_buf *req, struct ctl_msg *rep, int *status)
{
    uint64_t deadline = ctl_ipc_now_ms() + ctl_timeout_ms;
    const char *sv;
    size_t msglen = 0;
    int64_t st = 0;
    int rc, send_rc, ret;
    char tmo[32];

    memset(rep, 0, sizeof(*rep));
    if (status)
        *status = 0;
    rc = ctl_buf_end(req);
    if (rc != 0) {
        ctl_err("the request is too large (%s)", td_strerror(rc));
        ctl_err_status(rc);
        return CTL_EXIT_FAIL;
    }
    send_rc = ctl_ipc_send(s->ipc, req->p, req->len, deadline);
    if (send_rc == TD_ETIMEDOUT) {
        ctl_fmt_timeout(tmo, sizeof(tmo));
        ctl_err("tunneld did not take the request within %s; giving up", tmo);
        ctl_err_status(send_rc);
        return CTL_EXIT_FAIL;
    }
    /* On another send error, the daemon may still have answered before it
     * closed (its peer check does that): read what is there. */
    ret = ctl_read_reply(s, deadline, send_rc, &msglen);
    if (ret != 0)
        return ret;
    rc = ctl_msg_parse(s->buf, msglen, rep);
    if (rc == TD_EUNSUPPORTED) {
        ctl_err("tunneld speaks control protocol version %d; this tunnelctl speaks version %d",
                rep->version, CTL_VERSION);
    } else if (rc != 0) {
        ctl_err("malformed reply from tunneld (%s)", td_strerror(rc));
    }
    memset(s->buf, 0, msglen);
    memmove(s->buf, s->buf + msglen, s->len - msglen);
    s->len -= msglen;
    if (rc != 0) {
        ctl_err_status(rc);
        return CTL_EXIT_FAIL;
    }
    sv = ctl_msg_get(rep, "status", NULL);
    if (!sv || !ctl_parse_i64(sv, &st) || st > 0 || st < -100000) {
        ctl_err("malformed reply from tunneld (no status)");
        ctl_err_status(TD_EPROTO);
        return CTL_EXIT_FAIL;
    }
    if (status)
        *status = (int)st;
    if (st == 0)
        return CTL_EXIT_OK;
    {
        size_t from = 0, n = 0;
        const char *e;
        char clean[1024];
        while ((e = ctl_msg_get(rep, "error", &from)) != NULL) {
            ctl_clean(clean, sizeof(clean), e);
            ctl_err("%s", clean);
            n++;
        }
        if (n == 0)
            ctl_err("%s", td_strerror((int)st));
    }
    ctl_err_status((int)st);
    return ctl_exit_for_status((int)st);
}

int ctl_call(struct ctl_buf *req, struct ctl_msg *rep, bool quiet_absent, int *status)
{
    struct ctl_session *s;
    int ret;

    memset(rep, 0, sizeof(*rep));
    if (status)
        *status = 0;
    ret = ctl_open(&s, quiet_absent);
    if (ret != 0)
        return ret;
    ret = ctl_exchange(s, req, rep, status);
    ctl_close(s);
    return ret;
}
