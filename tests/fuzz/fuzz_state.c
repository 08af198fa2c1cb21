/* Fuzz the state file parser: what parses must format and parse back to the
 * same users. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/error.h"
#include "config/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct td_state st, back;
    struct ctl_buf b;
    char why[128];
    int r = td_state_parse((const char *)data, size, &st, why, sizeof(why));

    CHECK(r == 0 || r == TD_EPROTO || r == TD_EUNSUPPORTED || r == TD_ENOMEM);
    if (r != 0) {
        CHECK(st.n == 0 && st.users == NULL);
        return 0;
    }
    if (td_state_format(&st, &b) == 0) {
        CHECK(td_state_parse(b.p, b.len, &back, why, sizeof(why)) == 0);
        CHECK(back.n == st.n);
        for (size_t i = 0; i < st.n; i++) {
            const struct st_user *x = &st.users[i], *y = &back.users[i];
            CHECK(strcmp(x->name, y->name) == 0 && x->protocol == y->protocol &&
                  same(x->secret, y->secret) && same(x->old_secret, y->old_secret) &&
                  x->created == y->created && (!x->old_secret || x->old_until == y->old_until));
        }
        td_state_free(&back);
    }
    ctl_buf_free(&b);
    td_state_free(&st);
    return 0;
}
