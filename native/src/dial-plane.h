/*
 * Native dials: non-blocking TCP connects to backends, watched by the event
 * loop itself (libuv poll handles, one timer for every connect timeout).
 *
 * The forwarder decides whom to dial (RFC 2782 order, ejection, failover,
 * the dial deadline: all in TypeScript); this only opens the socket
 * (non-blocking, close-on-exec, TCP_NODELAY), connects, and tells of the
 * outcome: the connected descriptor, or why not. No JavaScript socket, no
 * stream machinery, no per-dial timer, listener or poll handle, and no hop
 * to another thread: every connect under way waits in one epoll set of the
 * plane's, watched by one poll handle of the loop that accepted the
 * client, and the ends of one turn are told in one call. A connect that
 * ended within connect(2) (on loopback the handshake and a refusal both
 * do) is seen by one poll(2) and never enters the set. All calls and
 * reports are on the loop's thread.
 */
#ifndef SRVLINK_DIAL_PLANE_H
#define SRVLINK_DIAL_PLANE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* dial_report.error beside errno values: the connect timeout ran out, or dial_plane_abort(). */
#define DIAL_TIMED_OUT (-1)
#define DIAL_ABORTED (-2)

typedef struct dial_report {
  uint64_t id;
  int fd;    /* the connected socket, owned by whoever is told; -1 when the dial failed */
  int error; /* 0 when connected; an errno value (ECONNREFUSED...), DIAL_TIMED_OUT or DIAL_ABORTED */
} dial_report;

/* Called with the ends of `count` dials (each once), from a callback of the loop (never from within dial_plane_connect or dial_plane_abort). */
typedef void (*dial_report_fn)(void *ctx, const dial_report *reports, size_t count);

typedef struct dial_plane dial_plane;

/* Dials on `loop`, with an epoll descriptor of its own. 0 or an errno value. */
int dial_plane_create(uv_loop_t *loop, dial_report_fn report, void *ctx, dial_plane **out);

/*
 * Dial `addr` (IPv4 or IPv6) with a connect timeout of timeout_ms (> 0):
 * *id names the dial, whose end is reported once, later. 0 or an errno
 * value (ENOMEM, EAFNOSUPPORT): then nothing is reported. A connect that
 * fails at once (EMFILE, ENETUNREACH) is reported as any other failure.
 */
int dial_plane_connect(dial_plane *plane, const struct sockaddr *addr, socklen_t len, uint32_t timeout_ms, uint64_t *id);

/* Give up a dial under way: its socket is closed, its end reported as DIAL_ABORTED. Unknown ids are ignored. */
void dial_plane_abort(dial_plane *plane, uint64_t id);

/* Dials under way. */
size_t dial_plane_pending(const dial_plane *plane);

/* Close the sockets of dials under way (no report) and free the plane once the loop has closed its handles. */
void dial_plane_destroy(dial_plane *plane);

#endif
