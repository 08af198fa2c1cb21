/* Address, CIDR, duration, size and base64 parsers: no crash, no
 * out-of-bounds read, and what parses must survive a format/parse round
 * trip unchanged. */
#include "util/addr.h"
#include "util/base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct td_hostport hp, hp2;
    struct td_cidr cidr;
    const char *why = NULL;
    char text[600], z[256];
    uint64_t v;
    uint8_t ip[16];

    if (td_hostport_parse(s, size, true, &hp, &why) == 0) {
        td_hostport_format(text, sizeof(text), hp.host, hp.port);
        if (td_hostport_parse(text, strlen(text), true, &hp2, &why) != 0 ||
            strcmp(hp.host, hp2.host) != 0 || hp.port != hp2.port || hp.kind != hp2.kind)
            __builtin_trap();
    }
    if (td_cidr_parse(s, size, &cidr, &why) == 0) {
        if (cidr.family == 4 && cidr.prefix > 32)
            __builtin_trap();
        if (cidr.family == 6 && cidr.prefix > 128)
            __builtin_trap();
        /* The network address itself is always inside the range. */
        if (!td_cidr_match(&cidr, cidr.family, cidr.ip))
            __builtin_trap();
    }
    if (td_ipv4_parse(s, size, ip) == 0) {
        td_ip_format(text, sizeof(text), ip, 4);
        if (td_ipv4_parse(text, strlen(text), ip + 4) != 0 || memcmp(ip, ip + 4, 4) != 0)
            __builtin_trap();
    }
    (void)td_hostname_valid(s, size);

    /* Duration and size parsers take NUL-terminated text. */
    if (size < sizeof(z)) {
        memcpy(z, data, size);
        z[size] = '\0';
        (void)td_duration_parse(z, &v);
        (void)td_size_parse(z, &v);
    }

    {
        uint8_t out[512], again[512];
        char enc[800];
        size_t n = 0, m = 0, len = size > 512 ? 512 : size;
        if (td_base64_decode(s, len, out, sizeof(out), &n) == 0) {
            size_t e = td_base64_encode(out, n, enc, sizeof(enc));
            if (e == 0 && n > 0)
                __builtin_trap();
            if (td_base64_decode(enc, e, again, sizeof(again), &m) != 0 || m != n ||
                memcmp(out, again, n) != 0)
                __builtin_trap();
        }
        if (td_base64url_decode(s, len, out, sizeof(out), &n) == 0) {
            size_t e = td_base64url_encode(out, n, true, enc, sizeof(enc));
            if (td_base64url_decode(enc, e, again, sizeof(again), &m) != 0 || m != n ||
                memcmp(out, again, n) != 0)
                __builtin_trap();
        }
    }
    return 0;
}
