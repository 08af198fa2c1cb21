/* Fuzz the control message codec as the daemon uses it: frame what arrives,
 * parse each framed message, and check that a message rebuilt from what was
 * parsed parses back to the same fields. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/ctlmsg.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t off = 0;

    while (off < size) {
        size_t n = 0, scanned = 0;
        struct ctl_msg m, again;
        struct ctl_buf b;
        int r;

        /* Fed in two pieces, the scan position kept: same answer as at once. */
        r = ctl_msg_frame(p + off, (size - off) / 2, CTL_MAX_REQUEST, &scanned, &n);
        r = ctl_msg_frame(p + off, size - off, CTL_MAX_REQUEST, &scanned, &n);
        {
            size_t n2 = 0;
            int r2 = ctl_msg_frame(p + off, size - off, CTL_MAX_REQUEST, NULL, &n2);
            CHECK(r == r2 && (r != 0 || n == n2));
        }
        if (r != 0)
            break;
        CHECK(n > 0 && n <= size - off);
        r = ctl_msg_parse(p + off, n, &m);
        CHECK(r == 0 || r == TD_EPROTO || r == TD_EUNSUPPORTED || r == TD_ENOMEM);
        if (r == 0) {
            ctl_buf_init(&b, CTL_MAX_REQUEST + 64);
            ctl_buf_begin(&b);
            for (size_t i = 0; i < m.n; i++) {
                CHECK(ctl_key_valid(m.f[i].key, strlen(m.f[i].key)));
                CHECK(strlen(m.f[i].val) == m.f[i].vlen);
                ctl_buf_add(&b, m.f[i].key, m.f[i].val);
            }
            if (ctl_buf_end(&b) == 0) {
                CHECK(ctl_msg_parse(b.p, b.len, &again) == 0);
                CHECK(again.n == m.n);
                for (size_t i = 0; i < m.n; i++)
                    CHECK(strcmp(again.f[i].key, m.f[i].key) == 0 &&
                          strcmp(again.f[i].val, m.f[i].val) == 0);
                ctl_msg_free(&again);
            }
            ctl_buf_free(&b);
            ctl_msg_free(&m);
        }
        off += n;
    }
    return 0;
}
