/* Base64 (RFC 4648 sections 4 and 5).
 *
 * Decoding is strict on purpose: a credential or a wstan frame that decodes
 * the same from two different spellings is a way to slip past a comparison
 * done on the encoded text, so only the canonical spelling is accepted. */
#include "util/base64.h"

#include "util/error.h"

static const char td__b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char td__b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t td__b64_encode(const uint8_t *in, size_t inlen, const char *alpha, bool pad,
                             char *out, size_t cap)
{
    size_t full = inlen / 3, rest = inlen % 3;
    size_t need = full * 4;
    size_t o = 0;

    if (rest != 0)
        need += pad ? 4 : rest + 1;
    if (need > cap || (in == NULL && inlen != 0))
        return 0;

    for (size_t i = 0; i < full; i++) {
        uint32_t v = (uint32_t)in[3 * i] << 16 | (uint32_t)in[3 * i + 1] << 8 | in[3 * i + 2];
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    if (rest != 0) {
        uint32_t v = (uint32_t)in[3 * full] << 16;
        if (rest == 2)
            v |= (uint32_t)in[3 * full + 1] << 8;
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        if (rest == 2)
            out[o++] = alpha[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    if (o < cap)
        out[o] = '\0';
    return o;
}

size_t td_base64_encode(const uint8_t *in, size_t inlen, char *out, size_t cap)
{
    if (out == NULL)
        return 0;
    return td__b64_encode(in, inlen, td__b64_std, true, out, cap);
}

size_t td_base64url_encode(const uint8_t *in, size_t inlen, bool pad, char *out, size_t cap)
{
    if (out == NULL)
        return 0;
    return td__b64_encode(in, inlen, td__b64_url, pad, out, cap);
}

/* Value of one character in the given alphabet, or -1. */
static int td__b64_value(char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

static int td__b64_decode(const char *in, size_t inlen, bool url, uint8_t *out, size_t cap,
                          size_t *outlen)
{
    size_t data = inlen, npad = 0, rest, need, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    /* Padding, when present, must make the length a multiple of four and may
     * only be one or two '=' at the very end. */
    while (npad < 2 && data > 0 && in[data - 1] == '=') {
        data--;
        npad++;
    }
    if (npad > 0 || !url) {
        if (inlen % 4 != 0)
            return TD_EINVAL;
    }
    rest = data % 4;
    if (rest == 1)
        return TD_EINVAL;
    if (npad > 0 && npad != 4 - rest)
        return TD_EINVAL;

    need = data / 4 * 3 + (rest == 0 ? 0 : rest - 1);
    if (need > cap)
        return TD_ETOOBIG;

    for (size_t i = 0; i < data; i++) {
        int v = td__b64_value(in[i], url);
        if (v < 0)
            return TD_EINVAL; /* includes an '=' that is not at the end */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The bits left over after the last whole byte must be zero, otherwise
     * two different strings would decode to the same bytes. */
    if (acc != 0)
        return TD_EINVAL;
    *outlen = o;
    return 0;
}

int td_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t cap, size_t *outlen)
{
    if ((in == NULL && inlen != 0) || (out == NULL && cap != 0) || outlen == NULL)
        return TD_EINVAL;
    return td__b64_decode(in, inlen, false, out, cap, outlen);
}

int td_base64url_decode(const char *in, size_t inlen, uint8_t *out, size_t cap, size_t *outlen)
{
    if ((in == NULL && inlen != 0) || (out == NULL && cap != 0) || outlen == NULL)
        return TD_EINVAL;
    return td__b64_decode(in, inlen, true, out, cap, outlen);
}
