/* Relay buffers.  A chunk carries its own uv_write_t, so a buffer read from
 * one socket is handed to the other socket's write without a copy, and goes
 * back to a small bounded free list when the write completes.  Idle
 * connections hold no chunk: libuv asks for one only when data is ready. */
#ifndef TD_CHUNK_H_
#define TD_CHUNK_H_

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TD_CHUNK_SIZE (64 * 1024)

struct conn;

struct td_chunk {
    uv_write_t req;
    struct conn *c;
    int side;
    size_t cap;
    uint8_t data[];
};

/* A chunk with at least cap bytes; cap 0 means TD_CHUNK_SIZE (pooled). */
struct td_chunk *chunk_get(size_t cap);
void chunk_put(struct td_chunk *ch);
/* Recover the chunk from a pointer handed to libuv as uv_buf_t.base. */
struct td_chunk *chunk_from_data(void *data);
/* Drop the free list (at shutdown, so that leak checkers see a clean heap). */
void chunk_pool_drain(void);

#endif
