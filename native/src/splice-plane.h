/*
 * The native data plane: forwarded TCP pairs moved by splice(2) with
 * edge-triggered epoll, each pair on one thread at a time: the event loop's
 * while it is young (where small reads are a recv and a send instead, see
 * small_step in splice-plane.c), then one of the plane's own.
 *
 * A direction (client → backend, backend → client) takes a pipe of its
 * plane's pool while it has bytes in flight and gives it back once the
 * pipe is empty: an idle pair holds only its two sockets. Bytes go
 * socket → pipe → socket without entering user space. When no pipe can be
 * had (the plane's most, or pipe2 failing), the direction copies through
 * its thread's buffer instead: recv(MSG_PEEK), send, then recv(MSG_TRUNC)
 * of exactly what was sent, so no byte is held outside the sockets and
 * none is lost. A FIN read on
 * one side is passed on with shutdown(SHUT_WR) once the pipe is empty; an
 * error on either side (a reset, EPIPE) resets both (SO_LINGER 0 + close),
 * so a peer never takes a clean FIN for a complete stream when bytes were
 * lost.
 *
 * A new pair starts on the event loop's own thread: the "loop worker", an
 * epoll set of its own watched by a libuv poll handle, pumped by the loop
 * with no hand-off to another thread and no wake-up of one, which is most
 * of what a short connection costs. A pair that proves bulky (it moved
 * migrate_bytes, or kept a pump busy for PUMP_ROUNDS) or long (it still
 * moves bytes after migrate_ms) leaves the loop for one of the plane's
 * threads, pipes and state with it, so that one bulk stream still has a
 * thread of its own and the loop stays free for everything else. The ends
 * of pairs are reported in batches, on the loop's thread, from a callback
 * of the loop (never from within splice_plane_add or splice_plane_abort).
 */
#ifndef SRVLINK_SPLICE_PLANE_H
#define SRVLINK_SPLICE_PLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* How a pair ended. */
enum splice_end {
  SPLICE_END_CLOSED = 0,        /* both directions finished with a FIN */
  SPLICE_END_IDLE = 1,          /* no byte either way for the idle timeout */
  SPLICE_END_CLIENT_ERROR = 2,  /* the client side failed (reset, EPIPE...): both reset */
  SPLICE_END_BACKEND_ERROR = 3, /* the backend side failed: both reset */
  SPLICE_END_ABORTED = 4,       /* splice_plane_abort(): both reset */
};

typedef struct splice_report {
  uint64_t id;
  uint64_t bytes_in;  /* read from the client (towards the backend) */
  uint64_t bytes_out; /* read from the backend (towards the client) */
  int end;            /* enum splice_end */
  int error;          /* errno for the *_ERROR ends, else 0 */
} splice_report;

/*
 * Called on the loop's thread, from a callback of the loop, with the ends of
 * `count` pairs (each once, after both of its sockets are closed). It may
 * add and abort pairs.
 */
typedef void (*splice_report_fn)(void *ctx, const splice_report *reports, size_t count);

typedef struct splice_plane splice_plane;

typedef struct splice_plane_stats {
  uint32_t pairs;        /* pairs added and not finished yet */
  uint32_t loop_pairs;   /* of which on the loop's thread */
  uint64_t migrated;     /* pairs moved from the loop to a thread, ever */
  uint32_t pooled_pipes; /* empty pipes kept for the next bytes */
  uint32_t pipes_open;   /* every pipe open: held by a direction or pooled */
  uint32_t pipes_max;    /* what pipes_open is kept under */
  uint32_t threads;
  uint64_t pipe_bytes;   /* capacity of every pipe open */
  uint64_t pipe_budget;  /* what pipe_bytes is kept under, from fs.pipe-user-pages-soft */
  uint64_t copied_bytes; /* moved by the copy fallback, for want of a pipe */
} splice_plane_stats;

/* Most empty pipes kept for reuse, shared by the threads. */
#define SPLICE_POOL_MAX 32
/* Most threads of a plane. */
#define SPLICE_THREADS_MAX 8
/* Pipes open at once when the caller does not say (each is two descriptors). */
#define SPLICE_PIPES_DEFAULT 256
/* A pair leaves the loop for a thread once it has moved this many bytes (both ways)... */
#define SPLICE_MIGRATE_BYTES_DEFAULT (256u << 10)
/* ...or when it still moves bytes (no FIN yet) this many ms after it was added. */
#define SPLICE_MIGRATE_MS_DEFAULT 50

typedef struct splice_plane_options {
  uint32_t threads;       /* 0: one per CPU, at most 2 */
  uint32_t pipes_max;     /* 0: SPLICE_PIPES_DEFAULT */
  uint64_t migrate_bytes; /* 0: SPLICE_MIGRATE_BYTES_DEFAULT */
  uint32_t migrate_ms;    /* 0: SPLICE_MIGRATE_MS_DEFAULT */
} splice_plane_options;

/*
 * Start a plane on `loop` (its loop worker, and the handles that bring the
 * threads' reports to it) and its threads. At most pipes_max pipes are
 * open at once, so the plane's descriptors are two per pair, 2 * pipes_max,
 * two per thread and two for the loop (its epoll set and libuv's eventfd of
 * the async handle, if the loop had none yet). Called on the loop's
 * thread. 0 or an errno value.
 */
int splice_plane_create(uv_loop_t *loop, splice_report_fn report, void *ctx, const splice_plane_options *options, splice_plane **out);

/*
 * Hand a connected pair to the plane, on the loop's thread. On success (0) the plane owns both
 * descriptors (non-blocking, close-on-exec: the caller duplicates them with
 * F_DUPFD_CLOEXEC) and *id names the pair; on failure (an errno value:
 * no memory, or the plane stopping) the descriptors are left to the caller. idle_ms 0: no
 * idle timeout. `nonblocking`: both are known to be O_NONBLOCK (else they
 * are made so).
 */
int splice_plane_add(splice_plane *plane, int client_fd, int backend_fd, uint32_t idle_ms, bool nonblocking, uint64_t *id);

/* Reset both sockets of a pair (forced end of a drain); reported as SPLICE_END_ABORTED. Unknown ids are ignored. On the loop's thread. */
void splice_plane_abort(splice_plane *plane, uint64_t id);

void splice_plane_stats_read(splice_plane *plane, splice_plane_stats *out);

/*
 * Stop the threads and free the plane. Pairs not finished are reset, both
 * sides (bytes may still be in their pipes): no report for them.
 * `loop_alive`: called on the loop's thread with the loop still there (an
 * environment's teardown): the plane's handles are closed and the memory
 * freed once the loop has closed them. false from an atexit handler: the
 * handles are left alone (the loop runs no more), the loop worker's pairs
 * reset only when called on the loop's thread, and the memory is left to
 * the exit.
 */
void splice_plane_destroy(splice_plane *plane, bool loop_alive);

#endif
