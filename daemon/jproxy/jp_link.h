/* A logged-in jProxy tunnel socket, shared by the client (jp_client.c) and
 * the server (jp_server.c): the frame decoder on the receive side, and on the
 * send side a fair scheduler over the streams that have data.
 *
 * Sending.  Each stream owns a bounded queue of payload bytes
 * (JP_LINK_STREAM_CAP).  The link turns queued bytes into TCP Packets of at
 * most JP_PACKET_DATA_SEND bytes, taking one Packet from each stream in turn
 * (round robin), and keeps at most JP_LINK_WIRE_CAP bytes of encrypted frames
 * in the socket's write queue, so one busy stream can neither starve the
 * others nor make the tunnel hold unbounded memory.  Control messages
 * (Connect, Connect reply, UDP) go out before any queued data; a stream's
 * Disconnect goes out after that stream's queued data.
 *
 * Flow control (tunneld extension, only when both peers are tunneld, see
 * docs/protocols/jproxy.md): every stream starts with a send window of
 * JP_LINK_WINDOW bytes.  A receiver grants more with a TCP Window message
 * once it has written the bytes out to its local socket, so a stream whose
 * local reader stalls stops only itself.  The receiver holds the peer to
 * it: a Packet past what was granted resets that stream (on_overrun).
 *
 * A Java peer has no window, but it can still be slowed down: the owner
 * tells the link how many received bytes it holds for each stream
 * (jp_link_stream_held), and while any stream holds more than
 * JP_LINK_RECV_CAP the link stops reading the tunnel socket, until every
 * such stream is back under JP_LINK_RECV_LOW.  TCP then pushes back on the
 * peer; the other streams of the tunnel wait too.
 *
 * Lifetime: the link owns the uv_tcp_t handed to jp_link_start(); after
 * on_close the handle is being closed and the link must not be used except
 * for jp_link_free() once on_closed has run. */
#ifndef TD_JP_LINK_H_
#define TD_JP_LINK_H_

#include "core/daemon.h"
#include "proto/jproxy.h"
#include "core/queue.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define JP_LINK_STREAM_CAP (64 * 1024)   /* queued payload per stream */
#define JP_LINK_WIRE_CAP   (256 * 1024)  /* encrypted bytes in the socket queue */
#define JP_LINK_WINDOW     (256 * 1024)  /* initial per-stream window (extension) */
#define JP_LINK_RECV_CAP   (256 * 1024)  /* held per stream before the tunnel pauses */
#define JP_LINK_RECV_LOW   (128 * 1024)  /* ... and resumes once all are under this */
#define JP_LINK_CTRL_CAP   (1024 * 1024) /* control frames waiting before reads pause */
/* What a stream can hold at most: the cap plus what one read of the tunnel
 * socket (a 64 KiB chunk, see jpl_alloc) still delivers after the pause. */
#define JP_LINK_RECV_MAX (JP_LINK_RECV_CAP + 64 * 1024)

/* Our extension kind: TCP Window, 23 | id u16 | increment u32, both
 * directions, only after a 0x74 hello. */
#define JP_KIND_TCP_WINDOW 0x23

struct jp_link;

/* A table from 16-bit ids to pointers: 256 pages of 256 slots, each page
 * allocated while it holds an entry, so that a tunnel with a few streams
 * costs about 2.5 KiB however the ids are spread. */
#define JP_IDMAP_PAGES 256
struct jp_idmap {
    void **pages[JP_IDMAP_PAGES];
    uint16_t used[JP_IDMAP_PAGES];
};

void *jp_idmap_get(const struct jp_idmap *m, uint16_t id);
/* Returns 0 or TD_ENOMEM; p must not be NULL and replaces any entry. */
int jp_idmap_set(struct jp_idmap *m, uint16_t id, void *p);
void jp_idmap_del(struct jp_idmap *m, uint16_t id);
void jp_idmap_free(struct jp_idmap *m);

/* Embedded in the owner's per-stream struct. */
struct jp_link_stream {
    uint16_t id;
    struct td_queue ring; /* in the link's ring while it has something to send */
    bool in_ring;
    uint8_t *buf; /* queued payload, allocated only while non-empty */
    size_t len;
    size_t off, cap;       /* the payload is buf[off .. off+len), buf holds cap bytes */
    bool attached;         /* in the link's id table (extensions: for TCP Window) */
    bool finish;           /* send Disconnect once buf is empty */
    bool finished;         /* Disconnect sent */
    int64_t send_window;   /* bytes we may still send (extension), else unlimited */
    int64_t recv_window;   /* bytes the peer may still send (extension) */
    uint64_t recv_unacked; /* bytes received and written locally but not yet granted */
    bool overrun;          /* the peer sent past recv_window: reset, logged once */
    bool over;             /* holds more than JP_LINK_RECV_CAP: counted in n_over */
};

struct jp_link_cbs {
    /* Every message except Packets for which the owner is told via on_msg
     * too; TCP Window messages are handled inside the link. */
    void (*on_msg)(struct jp_link *l, const struct jp_msg *m);
    /* The stream's queue fell to half of JP_LINK_STREAM_CAP (or its window
     * opened): the owner may resume reading its local socket. */
    void (*on_drain)(struct jp_link *l, struct jp_link_stream *s);
    /* The link died (peer closed, read error, bad frame).  err is TD_EEOF
     * for a clean close.  Called once; the socket is closing. */
    void (*on_close)(struct jp_link *l, int err);
    /* The socket handle has been closed: now jp_link_free() is allowed. */
    void (*on_closed)(struct jp_link *l);
    /* Extension: the peer sent a Packet past the window we granted on s
     * (already logged; that Packet and the stream's later ones are dropped).
     * The owner resets the stream: Disconnect, and its local side closed. */
    void (*on_overrun)(struct jp_link *l, struct jp_link_stream *s);
};

struct jp_link {
    /* Set by the owner for log lines ("server X tunnel #3 peer=..."); kept
     * across jp_link_start().  NULL: "jproxy tunnel". */
    const char *name;
    /* Optional, set by the owner like name (kept across jp_link_start()):
     * the stream's Disconnect (jp_link_stream_finish) is in the socket's
     * write queue and the link has forgotten the stream (as after
     * jp_link_stream_detach), so the owner may free it here. */
    void (*on_finished)(struct jp_link *l, struct jp_link_stream *s);
    struct td_daemon *d;
    uv_tcp_t *tcp;
    const struct jp_link_cbs *cbs;
    void *ud;
    enum jp_dir peer_dir; /* JP_DIR_S2C on the client, JP_DIR_C2S on the server */
    bool extensions;      /* both peers are tunneld: windows and UDP allowed */
    struct jp_frame_ctx frames;
    struct td_queue ring; /* streams with data or a pending Disconnect */
    uint8_t *ctrl;        /* encoded control frames waiting for the socket */
    size_t ctrl_len, ctrl_cap;
    uint64_t wire_pending; /* encrypted bytes in the socket's write queue */
    bool reading, read_paused, closing;
    uint64_t last_rx_ms;     /* uv_now() of the last byte received */
    bool ctrl_paused;        /* reading stopped: too many control frames waiting */
    uint32_t n_over;         /* streams holding more than JP_LINK_RECV_CAP */
    bool flushing;           /* inside the scheduler (callbacks must not re-enter it) */
    bool starting;           /* inside jp_link_start() */
    bool close_notified;     /* on_close has run */
    int close_err;           /* for an on_close deferred to the close callback */
    struct jp_idmap streams; /* attached streams by id (extensions) */
};

/* Take over a connected, logged-in socket.  pre/pre_len: bytes already read
 * after the login (the start of the first frames), processed at once: on_msg
 * may run before this returns (it must not close the link then), and a bad
 * frame among them makes it fail.  On failure nothing was written, the
 * socket is not touched and still belongs to the caller. */
int jp_link_start(struct jp_link *l, struct td_daemon *d, uv_tcp_t *tcp, const uint8_t key[16],
                  enum jp_dir peer_dir, bool extensions, const struct jp_link_cbs *cbs, void *ud,
                  const uint8_t *pre, size_t pre_len);

/* Queue a control message (anything but a TCP Packet).  Returns 0 or TD_E*:
 * TD_ECANCELED when the link is closing, TD_ELIMIT for a UDP Packet while
 * the socket's queue is full (drop the datagram).  Reading the tunnel pauses
 * while more than JP_LINK_CTRL_CAP bytes of control frames wait. */
int jp_link_send_msg(struct jp_link *l, const struct jp_msg *m);

void jp_link_stream_init(struct jp_link_stream *s, uint16_t id);
/* Put the stream in the link's id table as soon as it exists (Connect sent
 * or received), so that the peer's window is enforced from its first Packet
 * and TCP Window messages reach it.  Without the extension it does nothing.
 * Out of memory: the stream works without either. */
void jp_link_stream_attach(struct jp_link *l, struct jp_link_stream *s);
/* Copy len bytes into the stream's queue; returns the number taken, which is
 * less than len when the queue is full (JP_LINK_STREAM_CAP): the owner then
 * stops reading its local socket until on_drain.  After finish, or while the
 * link is closing, the bytes are dropped and len is returned.  on_drain and
 * on_finished can run inside (for any stream).  A socket error met while
 * sending never calls on_close inside an owner's call: the link then closes
 * the socket and on_close runs from its close callback. */
size_t jp_link_stream_write(struct jp_link *l, struct jp_link_stream *s, const uint8_t *p,
                            size_t len);
size_t jp_link_stream_queued(const struct jp_link_stream *s);
/* Send Disconnect after the queued data. */
void jp_link_stream_finish(struct jp_link *l, struct jp_link_stream *s);
/* The owner wrote n received bytes of this stream to its local socket (and
 * they left our buffers): grants window to the peer when extensions are on. */
void jp_link_stream_consumed(struct jp_link *l, struct jp_link_stream *s, size_t n);
/* The owner now holds n bytes of this stream that came from the peer and
 * have not yet left for its local socket.  Reading the tunnel pauses while
 * any stream holds more than JP_LINK_RECV_CAP and resumes once all of them
 * are under JP_LINK_RECV_LOW (see above); may call uv_read_start/stop, no
 * callbacks.  Ignored after the stream's Disconnect went out. */
void jp_link_stream_held(struct jp_link *l, struct jp_link_stream *s, size_t n);
/* Forget the stream (it is being freed): drop its queue, leave the ring. */
void jp_link_stream_detach(struct jp_link *l, struct jp_link_stream *s);

/* Stop/resume reading the tunnel socket for the owner's own reasons
 * (independent of the pause for held bytes above). */
void jp_link_read_pause(struct jp_link *l, bool pause);
/* Reading is paused because a stream holds more than JP_LINK_RECV_CAP: the
 * peer's messages may be waiting in the socket, so its silence says nothing
 * about it until the local reader catches up. */
bool jp_link_over_cap(const struct jp_link *l);
/* Close the socket; on_close (if not yet called) and on_closed follow. */
void jp_link_close(struct jp_link *l, int err);
void jp_link_free(struct jp_link *l);

#endif
