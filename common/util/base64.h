/* Base64 (RFC 4648): the standard alphabet with padding, and the URL-safe
 * alphabet (used by wstan) with optional padding.  Pure functions. */
#ifndef TD_BASE64_H_
#define TD_BASE64_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Returns the number of characters written (a NUL is added when there is
 * room), or 0 when cap is too small. */
size_t td_base64_encode(const uint8_t *in, size_t inlen, char *out, size_t cap);
size_t td_base64url_encode(const uint8_t *in, size_t inlen, bool pad, char *out, size_t cap);

/* Strict decoding: wrong characters, bad padding or non-zero trailing bits
 * give TD_EINVAL; too little room gives TD_ETOOBIG.  The url variant accepts
 * input with or without padding. */
int td_base64_decode(const char *in, size_t inlen, uint8_t *out, size_t cap, size_t *outlen);
int td_base64url_decode(const char *in, size_t inlen, uint8_t *out, size_t cap, size_t *outlen);

#endif
