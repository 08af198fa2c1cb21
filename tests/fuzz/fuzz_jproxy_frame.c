/* Fuzz the jProxy frame decoder with a fixed K (00 01 .. 0F, the spec's
 * vector key).  The first input byte picks how the rest is cut into chunks
 * (0: all at once, else 1..255 bytes per chunk), as TCP reads would cut it.
 * Every decoded message must re-encrypt to exactly the frame it came from
 * (ECB is deterministic and the padding check is strict), and must parse in
 * either direction without surprises. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "proto/jproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const uint8_t fuzz_key[JP_KEY_LEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void check_msg(const uint8_t *m, size_t len)
{
    struct jp_msg msg;
    for (int dir = JP_DIR_C2S; dir <= JP_DIR_S2C; dir++) {
        int rc = jp_msg_parse(m, len, (enum jp_dir)dir, &msg);
        CHECK(rc == 0 || rc == TD_EPROTO);
        if (rc == 0)
            CHECK(msg.type != JP_MSG_NONE);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jp_frame_ctx *f, *g = NULL;
    uint8_t *out = NULL;
    size_t chunk, pos = 0, frame_start = 0;
    int rc = 0;

    if (size < 1)
        return 0;
    chunk = data[0] == 0 ? size : data[0];
    data++;
    size--;
    f = malloc(sizeof(*f));
    g = malloc(sizeof(*g));
    out = malloc(JP_FRAME_MAX_WIRE);
    if (f == NULL || g == NULL || out == NULL)
        goto done;
    CHECK(jp_frame_init(f, fuzz_key) == 0);
    CHECK(jp_frame_init(g, fuzz_key) == 0);
    while (pos < size && rc == 0) {
        size_t n = size - pos < chunk ? size - pos : chunk;
        const uint8_t *q = data + pos;
        size_t left = n;

        for (;;) {
            rc = jp_frame_parse(f, &q, &left);
            if (rc == TD_EAGAIN) {
                CHECK(left == 0);
                rc = 0;
                break;
            }
            if (rc != 0) {
                CHECK(rc == TD_EPROTO || rc == TD_ECRYPTO);
                /* Sticky. */
                CHECK(jp_frame_parse(f, &q, &left) == rc);
                break;
            }
            {
                size_t frame_end = (size_t)(q - data);
                size_t olen = 0;
                const uint8_t *r;
                size_t rl;

                CHECK(f->msg != NULL && f->msg_len <= JP_MSG_MAX);
                CHECK(frame_end - frame_start == JP_FRAME_WIRE_LEN(f->msg_len));
                if (f->msg_len > 0) {
                    CHECK(jp_frame_encode(f, f->msg, f->msg_len, out, JP_FRAME_MAX_WIRE, &olen) ==
                          0);
                    CHECK(olen == frame_end - frame_start);
                    CHECK(memcmp(out, data + frame_start, olen) == 0);
                    /* And a fresh decoder gets the same message back. */
                    r = out;
                    rl = olen;
                    CHECK(jp_frame_parse(g, &r, &rl) == 0 && rl == 0);
                    CHECK(g->msg_len == f->msg_len && memcmp(g->msg, f->msg, f->msg_len) == 0);
                }
                check_msg(f->msg, f->msg_len);
                frame_start = frame_end;
            }
        }
        pos += n;
    }
done:
    if (f != NULL)
        jp_frame_free(f);
    if (g != NULL)
        jp_frame_free(g);
    free(f);
    free(g);
    free(out);
    return 0;
}
