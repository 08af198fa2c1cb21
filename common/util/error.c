#include "util/error.h"

#include <stddef.h>

struct td_err_entry {
    int code;
    const char *name;
    const char *msg;
};

static const struct td_err_entry td_err_table[] = {
#define XX(name, val, msg) {val, "TD_" #name, msg},
    TD_ERRNO_MAP(XX)
#undef XX
};

static const struct td_err_entry *td_err_find(int err)
{
    for (size_t i = 0; i < sizeof(td_err_table) / sizeof(td_err_table[0]); i++)
        if (td_err_table[i].code == err)
            return &td_err_table[i];
    return NULL;
}

const char *td_strerror(int err)
{
    const struct td_err_entry *e;
    if (err >= 0)
        return "success";
    e = td_err_find(err);
    return e ? e->msg : "unknown error";
}

const char *td_err_name(int err)
{
    const struct td_err_entry *e;
    if (err >= 0)
        return "OK";
    e = td_err_find(err);
    return e ? e->name : "TD_EUNKNOWN";
}
