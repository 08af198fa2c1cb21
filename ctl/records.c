/* The records of the daemon's replies; see records.h. */
#include "records.h"

const struct ctl_fspec ctl_no_fields[] = {{NULL, CTL_FT_STR, NULL}};

const struct ctl_fspec ctl_status_top[] = {
    {"version", CTL_FT_STR, NULL},      {"pid", CTL_FT_NUM, NULL},
    {"uptime_ms", CTL_FT_MS, NULL},     {"config", CTL_FT_STR, NULL},
    {"generation", CTL_FT_NUM, NULL},   {"state_dir", CTL_FT_STR, NULL},
    {"conns_active", CTL_FT_NUM, NULL}, {"conns_total", CTL_FT_NUM, NULL},
    {NULL, CTL_FT_STR, NULL},
};

static const struct ctl_fspec listener_fields[] = {
    {"type", CTL_FT_STR, "TYPE"},
    {"listen", CTL_FT_STR, "LISTEN"},
    {"route", CTL_FT_STR, "ROUTE"},
    {"conns", CTL_FT_NUM, "CONNS"},
    {"handshakes", CTL_FT_NUM, "HANDSHAKES"},
    {NULL, CTL_FT_STR, NULL},
};

static const struct ctl_fspec tunnel_fields[] = {
    {"protocol", CTL_FT_STR, "PROTOCOL"},
    {"state", CTL_FT_STR, "STATE"},
    {"streams", CTL_FT_NUM, "STREAMS"},
    {"links", CTL_FT_NUM, "LINKS"},
    {"pooled", CTL_FT_NUM, "POOLED"},
    {"links_opened", CTL_FT_NUM, "LINKS_OPENED"},
    {"streams_total", CTL_FT_NUM, "STREAMS_TOTAL"},
    {NULL, CTL_FT_STR, NULL},
};

static const struct ctl_fspec tunnel_list_fields[] = {
    {"protocol", CTL_FT_STR, "PROTOCOL"},
    {"server", CTL_FT_STR, "SERVER"},
    {"state", CTL_FT_STR, "STATE"},
    {"streams", CTL_FT_NUM, "STREAMS"},
    {"links", CTL_FT_NUM, "LINKS"},
    {"pooled", CTL_FT_NUM, "POOLED"},
    {"links_opened", CTL_FT_NUM, "LINKS_OPENED"},
    {"streams_total", CTL_FT_NUM, "STREAMS_TOTAL"},
    {NULL, CTL_FT_STR, NULL},
};

static const struct ctl_fspec server_fields[] = {
    {"protocol", CTL_FT_STR, "PROTOCOL"},
    {"listen", CTL_FT_STR, "LISTEN"},
    {"tunnels", CTL_FT_NUM, "TUNNELS"},
    {"handshakes", CTL_FT_NUM, "HANDSHAKES"},
    {"tunnels_total", CTL_FT_NUM, "TUNNELS_TOTAL"},
    {NULL, CTL_FT_STR, NULL},
};

const struct ctl_rspec ctl_status_recs[3] = {
    {"listener", "listeners", "name", CTL_FT_STR, "LISTENER", listener_fields},
    {"tunnel", "tunnels", "name", CTL_FT_STR, "TUNNEL", tunnel_fields},
    {"server", "servers", "name", CTL_FT_STR, "SERVER", server_fields},
};

const struct ctl_rspec ctl_tunnels_recs[1] = {
    {"tunnel", "tunnels", "name", CTL_FT_STR, "TUNNEL", tunnel_list_fields},
};

static const struct ctl_fspec user_fields[] = {
    {"source", CTL_FT_STR, "SOURCE"},      {"protocols", CTL_FT_LIST, "PROTOCOLS"},
    {"created_s", CTL_FT_TIME, "CREATED"}, {"rotating_until_s", CTL_FT_TIME, "OLD KEY UNTIL"},
    {"conns", CTL_FT_NUM, "CONNS"},        {NULL, CTL_FT_STR, NULL},
};

const struct ctl_rspec ctl_users_recs[1] = {
    {"user", "users", "name", CTL_FT_STR, "USER", user_fields},
};

static const struct ctl_fspec stats_fields[] = {
    {"bytes_in", CTL_FT_BYTES, "IN"},       {"bytes_out", CTL_FT_BYTES, "OUT"},
    {"conns_active", CTL_FT_NUM, "ACTIVE"}, {"conns_total", CTL_FT_NUM, "TOTAL"},
    {"fail", CTL_FT_FAIL, "FAILURES"},      {NULL, CTL_FT_STR, NULL},
};

const struct ctl_rspec ctl_stats_recs[4] = {
    {"user", "users", "name", CTL_FT_STR, "USER", stats_fields},
    {"tunnel", "tunnels", "name", CTL_FT_STR, "TUNNEL", stats_fields},
    {"listener", "listeners", "name", CTL_FT_STR, "LISTENER", stats_fields},
    {"server", "servers", "name", CTL_FT_STR, "SERVER", stats_fields},
};

static const struct ctl_fspec conn_fields[] = {
    {"user", CTL_FT_STR, "USER"},     {"listener", CTL_FT_STR, "LISTENER"},
    {"server", CTL_FT_STR, "SERVER"}, {"route", CTL_FT_STR, "ROUTE"},
    {"client", CTL_FT_STR, "CLIENT"}, {"target", CTL_FT_STR, "TARGET"},
    {"bytes_in", CTL_FT_BYTES, "IN"}, {"bytes_out", CTL_FT_BYTES, "OUT"},
    {"age_ms", CTL_FT_MS, "AGE"},     {NULL, CTL_FT_STR, NULL},
};

const struct ctl_rspec ctl_conns_recs[1] = {
    {"conn", "conns", "id", CTL_FT_STR, "ID", conn_fields},
};

const struct ctl_fspec ctl_reload_top[] = {
    {"generation", CTL_FT_NUM, NULL}, {"started", CTL_FT_NUM, NULL}, {"stopped", CTL_FT_NUM, NULL},
    {"replaced", CTL_FT_NUM, NULL},   {"kept", CTL_FT_NUM, NULL},    {NULL, CTL_FT_STR, NULL},
};
