/* jProxy v3 codecs (see jproxy.h). */
#include "proto/jproxy.h"

#include "crypto/crypto.h"
#include "crypto/crypto_stream.h"
#include "util/error.h"

#include <string.h>

#include <mbedtls/platform_util.h>

static uint16_t jp__get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void jp__put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* ---- handshake ------------------------------------------------------------ */

/* 0 when the bytes seen so far agree with the magic. */
static int jp__check_magic(const uint8_t *p, size_t len)
{
    size_t n = len < JP_MAGIC_LEN ? len : JP_MAGIC_LEN;
    return memcmp(p, JP_MAGIC, n) == 0 ? 0 : TD_EPROTO;
}

void jp_hello_encode(uint8_t out[JP_HELLO_LEN], uint8_t minor)
{
    memcpy(out, JP_MAGIC, JP_MAGIC_LEN);
    out[6] = JP_VERSION_MAJOR;
    out[7] = minor;
}

int jp_hello_parse(const uint8_t *p, size_t len, size_t *used, struct jp_hello *out)
{
    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (jp__check_magic(p, len) != 0)
        return TD_EPROTO;
    if (len < JP_HELLO_LEN)
        return TD_EAGAIN;
    out->major = p[6];
    out->minor = p[7];
    *used = JP_HELLO_LEN;
    return out->major == JP_VERSION_MAJOR ? 0 : TD_EUNSUPPORTED;
}

uint8_t jp_hello_accept_status(const struct jp_hello *h, bool extensions)
{
    if (h != NULL && extensions && h->minor == JP_MINOR_TUNNELD)
        return JP_HELLO_OK_TUNNELD;
    return JP_HELLO_OK;
}

void jp_hello_reply_encode(uint8_t out[JP_HELLO_REPLY_LEN], uint8_t status)
{
    memcpy(out, JP_MAGIC, JP_MAGIC_LEN);
    out[6] = status;
}

int jp_hello_reply_parse(const uint8_t *p, size_t len, size_t *used, struct jp_hello_reply *out)
{
    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (jp__check_magic(p, len) != 0)
        return TD_EPROTO;
    if (len < JP_HELLO_REPLY_LEN)
        return TD_EAGAIN;
    out->status = p[6];
    out->accepted = out->status == JP_HELLO_OK || out->status == JP_HELLO_OK_TUNNELD;
    out->tunneld = out->status == JP_HELLO_OK_TUNNELD;
    *used = JP_HELLO_REPLY_LEN;
    return 0;
}

int jp_token_parse(const uint8_t *p, size_t len, size_t *used, uint8_t out[JP_TOKEN_LEN])
{
    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (len < JP_TOKEN_LEN)
        return TD_EAGAIN;
    memcpy(out, p, JP_TOKEN_LEN);
    *used = JP_TOKEN_LEN;
    return 0;
}

int jp_login_reply_parse(const uint8_t *p, size_t len, size_t *used, struct jp_login_reply *out)
{
    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (len < 1)
        return TD_EAGAIN;
    if (p[0] == JP_LOGIN_INVALID_KEY) {
        out->status = JP_LOGIN_INVALID_KEY;
        *used = 1;
        return 0;
    }
    if (p[0] != JP_LOGIN_OK)
        return TD_EPROTO;
    if (len < JP_LOGIN_OK_LEN)
        return TD_EAGAIN;
    out->status = JP_LOGIN_OK;
    memcpy(out->ct, p + 1, JP_RSA_CT_LEN);
    *used = JP_LOGIN_OK_LEN;
    return 0;
}

void jp_login_reply_encode_ok(uint8_t out[JP_LOGIN_OK_LEN], const uint8_t ct[JP_RSA_CT_LEN])
{
    out[0] = JP_LOGIN_OK;
    memcpy(out + 1, ct, JP_RSA_CT_LEN);
}

void jp_login_reply_encode_reject(uint8_t out[1])
{
    out[0] = JP_LOGIN_INVALID_KEY;
}

/* ---- token and key transport ---------------------------------------------- */

/* Large enough for the SPKI of any RSA key up to 4096 bits. */
#define JP__SPKI_MAX 600

int jp_token_compute(const uint8_t *spki, size_t spki_len, const uint8_t salt[JP_SALT_LEN],
                     uint8_t out[JP_TOKEN_LEN])
{
    uint8_t buf[JP__SPKI_MAX + JP_SALT_LEN];

    if (spki == NULL || spki_len == 0 || spki_len > JP__SPKI_MAX || salt == NULL || out == NULL)
        return TD_EINVAL;
    memcpy(buf, spki, spki_len);
    memcpy(buf + spki_len, salt, JP_SALT_LEN);
    return td_sha256(buf, spki_len + JP_SALT_LEN, out);
}

int jp_token_for_key(struct td_pk *key, const uint8_t salt[JP_SALT_LEN], uint8_t out[JP_TOKEN_LEN])
{
    uint8_t spki[JP__SPKI_MAX];
    size_t n = 0;
    int rc;

    if (key == NULL || salt == NULL || out == NULL)
        return TD_EINVAL;
    rc = td_pk_write_spki_der(key, spki, sizeof(spki), &n);
    if (rc != 0)
        return rc;
    return jp_token_compute(spki, n, salt, out);
}

bool jp_token_verify(const uint8_t *spki, size_t spki_len, const uint8_t salt[JP_SALT_LEN],
                     const uint8_t token[JP_TOKEN_LEN])
{
    uint8_t t[JP_TOKEN_LEN];

    if (token == NULL || jp_token_compute(spki, spki_len, salt, t) != 0)
        return false;
    return td_ct_memeq(t, token, JP_TOKEN_LEN);
}

int jp_login_accept(struct td_pk *client_pub, uint8_t key[JP_KEY_LEN],
                    uint8_t reply[JP_LOGIN_OK_LEN])
{
    size_t n = 0;
    int rc;

    if (client_pub == NULL || key == NULL || reply == NULL)
        return TD_EINVAL;
    if (td_pk_bits(client_pub) != JP_RSA_BITS)
        return TD_EUNSUPPORTED;
    rc = td_random(key, JP_KEY_LEN);
    if (rc != 0)
        return rc;
    reply[0] = JP_LOGIN_OK;
    rc = td_pk_encrypt_pkcs1(client_pub, key, JP_KEY_LEN, reply + 1, JP_RSA_CT_LEN, &n);
    if (rc == 0 && n != JP_RSA_CT_LEN)
        rc = TD_ECRYPTO;
    if (rc != 0)
        mbedtls_platform_zeroize(key, JP_KEY_LEN);
    return rc;
}

int jp_login_open(struct td_pk *client_priv, const uint8_t ct[JP_RSA_CT_LEN],
                  uint8_t key[JP_KEY_LEN])
{
    uint8_t pt[JP_RSA_CT_LEN];
    size_t n = 0;
    int rc;

    if (client_priv == NULL || ct == NULL || key == NULL)
        return TD_EINVAL;
    if (td_pk_bits(client_priv) != JP_RSA_BITS)
        return TD_EUNSUPPORTED;
    rc = td_pk_decrypt_pkcs1(client_priv, ct, JP_RSA_CT_LEN, pt, sizeof(pt), &n);
    if (rc == TD_ECRYPTO) {
        rc = TD_EAUTH;
        goto out;
    }
    if (rc != 0)
        goto out;
    if (n != JP_KEY_LEN) {
        rc = TD_EPROTO;
        goto out;
    }
    memcpy(key, pt, JP_KEY_LEN);
out:
    mbedtls_platform_zeroize(pt, sizeof(pt));
    return rc;
}

/* ---- frames ---------------------------------------------------------------- */

int jp_frame_init(struct jp_frame_ctx *f, const uint8_t key[JP_KEY_LEN])
{
    if (f == NULL || key == NULL)
        return TD_EINVAL;
    memset(f, 0, sizeof(*f));
    return td_aes_ecb_init(&f->aes, key);
}

void jp_frame_free(struct jp_frame_ctx *f)
{
    if (f == NULL)
        return;
    td_aes_ecb_free(&f->aes);
    mbedtls_platform_zeroize(f->buf, sizeof(f->buf));
    f->msg = NULL;
    f->msg_len = 0;
    f->have = 0;
    f->nblocks = 0;
}

int jp_frame_parse(struct jp_frame_ctx *f, const uint8_t **data, size_t *len)
{
    size_t need, take, n = 0;
    int rc;

    if (f == NULL || data == NULL || len == NULL || (*data == NULL && *len != 0))
        return TD_EINVAL;
    if (f->err != 0)
        return f->err;
    if (!f->aes.ready)
        return TD_EINVAL;
    /* The previous message is gone once the caller asks for the next one. */
    f->msg = NULL;
    f->msg_len = 0;
    if (f->nblocks == 0) {
        if (*len == 0)
            return TD_EAGAIN;
        f->nblocks = **data;
        (*data)++;
        (*len)--;
        f->have = 0;
        if (f->nblocks == 0) {
            /* Java logs and carries on; we never send it and treat it as a
             * broken peer. */
            f->err = TD_EPROTO;
            return f->err;
        }
    }
    need = (size_t)f->nblocks * JP_BLOCK_LEN;
    if (f->have == 0 && *len >= need) {
        /* The whole ciphertext is in the input: decrypt straight from it. */
        rc = td_aes_ecb_decrypt_unpad(&f->aes, *data, need, f->buf, sizeof(f->buf), &n);
        *data += need;
        *len -= need;
    } else {
        take = need - f->have;
        if (take > *len)
            take = *len;
        if (take > 0)
            memcpy(f->buf + f->have, *data, take);
        f->have += take;
        *data += take;
        *len -= take;
        if (f->have < need)
            return TD_EAGAIN;
        rc = td_aes_ecb_decrypt_unpad(&f->aes, f->buf, need, f->buf, sizeof(f->buf), &n);
    }
    f->nblocks = 0;
    f->have = 0;
    if (rc != 0) {
        f->err = rc;
        return f->err;
    }
    f->msg = f->buf;
    f->msg_len = n;
    return 0;
}

int jp_frame_encode(struct jp_frame_ctx *f, const uint8_t *msg, size_t len, uint8_t *out,
                    size_t cap, size_t *outlen)
{
    size_t n = 0;
    int rc;

    if (f == NULL || msg == NULL || out == NULL || outlen == NULL || len == 0)
        return TD_EINVAL;
    if (len > JP_MSG_MAX)
        return TD_ETOOBIG;
    if (cap < JP_FRAME_WIRE_LEN(len))
        return TD_ETOOBIG;
    rc = td_aes_ecb_encrypt_pad(&f->aes, msg, len, out + 1, cap - 1, &n);
    if (rc != 0)
        return rc;
    out[0] = (uint8_t)(n / JP_BLOCK_LEN);
    *outlen = 1 + n;
    return 0;
}

/* ---- messages -------------------------------------------------------------- */

/* Parse atyp | L | addr at p (avail bytes).  Returns NULL on success or a
 * static reason. */
static const char *jp__parse_addr(const uint8_t *p, size_t avail, struct jp_addr *a)
{
    uint8_t l;

    if (avail < 2)
        return "truncated address";
    a->atyp = p[0];
    l = p[1];
    if (avail - 2 < l)
        return "address longer than the message";
    switch (a->atyp) {
    case JP_ATYP_IPV4:
        if (l != 4)
            return "IPv4 address length is not 4";
        memcpy(a->ip, p + 2, 4);
        return NULL;
    case JP_ATYP_IPV6:
        if (l != 16)
            return "IPv6 address length is not 16";
        memcpy(a->ip, p + 2, 16);
        return NULL;
    case JP_ATYP_DOMAIN:
        if (l == 0)
            return "empty host name";
        if (memchr(p + 2, 0, l) != NULL)
            return "NUL in host name";
        memcpy(a->host, p + 2, l);
        a->host[l] = '\0';
        a->host_len = l;
        return NULL;
    default:
        return "unknown address type";
    }
}

static int jp__encode_addr(const struct jp_addr *a, uint8_t *p, size_t cap, size_t *n)
{
    size_t l;

    switch (a->atyp) {
    case JP_ATYP_IPV4:
        l = 4;
        break;
    case JP_ATYP_IPV6:
        l = 16;
        break;
    case JP_ATYP_DOMAIN:
        l = a->host_len;
        if (l == 0 || memchr(a->host, 0, l) != NULL)
            return TD_EINVAL;
        break;
    default:
        return TD_EINVAL;
    }
    if (cap < 2 + l)
        return TD_ETOOBIG;
    p[0] = a->atyp;
    p[1] = (uint8_t)l;
    memcpy(p + 2, a->atyp == JP_ATYP_DOMAIN ? (const void *)a->host : (const void *)a->ip, l);
    *n = 2 + l;
    return 0;
}

static int jp__parse_packet(const uint8_t *m, size_t len, enum jp_msg_type type, struct jp_msg *out)
{
    uint16_t n;

    if (len < JP_PACKET_HDR_LEN)
        return TD_EPROTO;
    n = jp__get16(m + 3);
    if (n > len - JP_PACKET_HDR_LEN)
        return TD_EPROTO;
    out->type = type;
    out->data = m + JP_PACKET_HDR_LEN;
    out->data_len = n;
    return 0;
}

int jp_msg_parse(const uint8_t *m, size_t len, enum jp_dir dir, struct jp_msg *out)
{
    const char *why;

    if ((m == NULL && len != 0) || out == NULL || (dir != JP_DIR_C2S && dir != JP_DIR_S2C))
        return TD_EINVAL;
    memset(out, 0, sizeof(*out));
    if (len < 1)
        return TD_EPROTO;
    out->kind = m[0];
    if (len >= 3)
        out->id = jp__get16(m + 1);
    switch (m[0]) {
    case JP_KIND_TCP_CONNECT:
        if (dir == JP_DIR_S2C) {
            if (len < 6)
                return TD_EPROTO;
            out->type = JP_MSG_TCP_CONNECT_REPLY;
            out->status = m[3];
            out->time_ms = jp__get16(m + 4);
            return 0;
        }
        if (len < 3)
            return TD_EPROTO;
        if (len < 5) {
            why = "truncated request";
        } else {
            out->addr.port = jp__get16(m + 3);
            why = jp__parse_addr(m + 5, len - 5, &out->addr);
        }
        if (why != NULL) {
            memset(&out->addr, 0, sizeof(out->addr));
            out->type = JP_MSG_TCP_CONNECT_BAD;
            out->why = why;
            return 0;
        }
        out->type = JP_MSG_TCP_CONNECT;
        return 0;
    case JP_KIND_UDP_ASSOCIATE:
        if (dir == JP_DIR_S2C) {
            if (len < 6)
                return TD_EPROTO;
            out->type = JP_MSG_UDP_ASSOCIATE_REPLY;
            out->status = m[3];
            out->local_port = jp__get16(m + 4);
            return 0;
        }
        if (len < 3)
            return TD_EPROTO;
        if (len < 7) {
            why = "truncated request";
        } else {
            out->local_port = jp__get16(m + 3);
            out->addr.port = jp__get16(m + 5);
            why = jp__parse_addr(m + 7, len - 7, &out->addr);
        }
        if (why != NULL) {
            memset(&out->addr, 0, sizeof(out->addr));
            out->local_port = 0;
            out->type = JP_MSG_UDP_ASSOCIATE_BAD;
            out->why = why;
            return 0;
        }
        out->type = JP_MSG_UDP_ASSOCIATE;
        return 0;
    case JP_KIND_TCP_PACKET:
        return jp__parse_packet(m, len, JP_MSG_TCP_PACKET, out);
    case JP_KIND_UDP_PACKET:
        return jp__parse_packet(m, len, JP_MSG_UDP_PACKET, out);
    case JP_KIND_TCP_DISCONNECT:
        if (len < 4)
            return TD_EPROTO;
        out->type = JP_MSG_TCP_DISCONNECT;
        out->reason = m[3];
        return 0;
    case JP_KIND_UDP_DISSOCIATE:
        if (len < 3)
            return TD_EPROTO;
        out->type = JP_MSG_UDP_DISSOCIATE;
        return 0;
    default:
        out->id = 0;
        out->type = JP_MSG_UNKNOWN;
        return 0;
    }
}

int jp_msg_encode(const struct jp_msg *m, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t n = 0, need;
    int rc;

    if (m == NULL || out == NULL || outlen == NULL)
        return TD_EINVAL;
    switch (m->type) {
    case JP_MSG_TCP_CONNECT:
    case JP_MSG_UDP_ASSOCIATE: {
        size_t hdr = m->type == JP_MSG_TCP_CONNECT ? 5 : 7;
        if (cap < hdr)
            return TD_ETOOBIG;
        out[0] = m->type == JP_MSG_TCP_CONNECT ? JP_KIND_TCP_CONNECT : JP_KIND_UDP_ASSOCIATE;
        jp__put16(out + 1, m->id);
        if (m->type == JP_MSG_TCP_CONNECT) {
            jp__put16(out + 3, m->addr.port);
        } else {
            jp__put16(out + 3, m->local_port);
            jp__put16(out + 5, m->addr.port);
        }
        rc = jp__encode_addr(&m->addr, out + hdr, cap - hdr, &n);
        if (rc != 0)
            return rc;
        *outlen = hdr + n;
        return 0;
    }
    case JP_MSG_TCP_CONNECT_REPLY:
    case JP_MSG_UDP_ASSOCIATE_REPLY:
        if (cap < 6)
            return TD_ETOOBIG;
        out[0] = m->type == JP_MSG_TCP_CONNECT_REPLY ? JP_KIND_TCP_CONNECT : JP_KIND_UDP_ASSOCIATE;
        jp__put16(out + 1, m->id);
        out[3] = m->status;
        jp__put16(out + 4, m->type == JP_MSG_TCP_CONNECT_REPLY ? m->time_ms : m->local_port);
        *outlen = 6;
        return 0;
    case JP_MSG_TCP_PACKET:
    case JP_MSG_UDP_PACKET:
        if (m->data_len > JP_PACKET_DATA_MAX || (m->data == NULL && m->data_len != 0))
            return TD_EINVAL;
        need = JP_PACKET_HDR_LEN + (size_t)m->data_len;
        if (cap < need)
            return TD_ETOOBIG;
        out[0] = m->type == JP_MSG_TCP_PACKET ? JP_KIND_TCP_PACKET : JP_KIND_UDP_PACKET;
        jp__put16(out + 1, m->id);
        jp__put16(out + 3, m->data_len);
        if (m->data_len > 0)
            memmove(out + JP_PACKET_HDR_LEN, m->data, m->data_len);
        *outlen = need;
        return 0;
    case JP_MSG_TCP_DISCONNECT:
        if (cap < 4)
            return TD_ETOOBIG;
        out[0] = JP_KIND_TCP_DISCONNECT;
        jp__put16(out + 1, m->id);
        out[3] = m->reason;
        *outlen = 4;
        return 0;
    case JP_MSG_UDP_DISSOCIATE:
        if (cap < 3)
            return TD_ETOOBIG;
        out[0] = JP_KIND_UDP_DISSOCIATE;
        jp__put16(out + 1, m->id);
        *outlen = 3;
        return 0;
    default:
        return TD_EINVAL;
    }
}

int jp_frame_encode_msg(struct jp_frame_ctx *f, const struct jp_msg *m, uint8_t *out, size_t cap,
                        size_t *outlen)
{
    uint8_t buf[JP_MSG_MAX];
    size_t n = 0;
    int rc;

    if (f == NULL || m == NULL || out == NULL || outlen == NULL)
        return TD_EINVAL;
    rc = jp_msg_encode(m, buf, sizeof(buf), &n);
    if (rc == 0)
        rc = jp_frame_encode(f, buf, n, out, cap, outlen);
    mbedtls_platform_zeroize(buf, n);
    return rc;
}

uint8_t jp_connect_status_from_err(int err)
{
    switch (err) {
    case 0:
        return JP_CONNECT_OK;
    case TD_ECONNREFUSED:
        return JP_CONNECT_REFUSED;
    case TD_ETIMEDOUT:
        return JP_CONNECT_TIMEDOUT;
    case TD_ENETUNREACH:
        return JP_CONNECT_NETUNREACH;
    case TD_EDNS:
    case TD_ENOTFOUND:
        return JP_CONNECT_UNKNOWN_HOST;
    case TD_ELIMIT:
        return JP_CONNECT_LIMIT;
    default:
        return JP_CONNECT_FAILURE;
    }
}

int jp_connect_status_to_err(uint8_t status)
{
    switch (status) {
    case JP_CONNECT_OK:
        return 0;
    case JP_CONNECT_FAILURE:
        return TD_EIO;
    case JP_CONNECT_REFUSED:
        return TD_ECONNREFUSED;
    case JP_CONNECT_TIMEDOUT:
        return TD_ETIMEDOUT;
    case JP_CONNECT_NETUNREACH:
        return TD_ENETUNREACH;
    case JP_CONNECT_UNKNOWN_HOST:
        return TD_EDNS;
    case JP_CONNECT_LIMIT:
        return TD_ELIMIT;
    case JP_CONNECT_NOT_ALLOWED:
        return TD_EACCES;
    default:
        return TD_EPROTO;
    }
}

const char *jp_connect_status_str(uint8_t status)
{
    switch (status) {
    case JP_CONNECT_OK:
        return "ok";
    case JP_CONNECT_FAILURE:
        return "general failure";
    case JP_CONNECT_REFUSED:
        return "connection refused";
    case JP_CONNECT_TIMEDOUT:
        return "timed out";
    case JP_CONNECT_NETUNREACH:
        return "network unreachable";
    case JP_CONNECT_UNKNOWN_HOST:
        return "unknown host";
    case JP_CONNECT_LIMIT:
        return "too many connections";
    case JP_CONNECT_NOT_ALLOWED:
        return "not allowed by the server's rules";
    default:
        return "unknown status";
    }
}

uint16_t jp_time_clamp(uint64_t ms)
{
    return ms >= 0xFFFF ? (uint16_t)0xFFFF : (uint16_t)ms;
}
