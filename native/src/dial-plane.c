/* See dial-plane.h. */
#define _GNU_SOURCE
#include "dial-plane.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Dials whose connect ended, read from the plane's epoll set in one callback. */
#define EVENTS_MAX 64

struct dial {
  dial_plane *plane;
  uint64_t id;
  int fd;
  /* When its connect timeout runs out, µs of CLOCK_MONOTONIC; 0 once settled and waiting to be reported. */
  int64_t due;
  /* The outcome of a dial settled outside a poll callback (at once, or aborted), reported by the timer. */
  int settled;
  /* In the plane's epoll set, waiting for the connect to end. */
  bool polling;
  /* The dials not reported yet, by due time. */
  struct dial *prev, *next;
};

struct dial_plane {
  uv_loop_t *loop;
  dial_report_fn report;
  void *ctx;
  /*
   * Every connect under way waits in one epoll set of the plane's, watched
   * by one poll handle of the loop: an epoll_ctl to add a dial and one to
   * take it out, where a poll handle per dial costs four and an ioctl.
   */
  int epfd;
  uv_poll_t poll;
  /* Ends to report at the end of the callback under way (several at once, in one call). */
  dial_report *ends, *reporting;
  size_t nends, ends_cap, reporting_cap;
  uv_timer_t timer;
  /* Expiry runs after the poll for I/O that follows the timer (see on_timer): the idle handle keeps that poll from blocking. */
  uv_idle_t idle;
  uv_check_t check;
  /* Handles of the plane whose close is still to come (destroy). */
  int closing;
  /* The timer fires at or before the earliest due time (INT64_MAX: not armed). */
  int64_t armed_for;
  struct dial *head, *tail;
  size_t pending;
  uint64_t next_id;
  bool destroyed;
};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_timer(uv_timer_t *timer);

static void arm(dial_plane *plane, int64_t due) {
  if (due >= plane->armed_for) return;
  int64_t wait = due - now_us();
  /* Rounded up: a connect timeout never runs out early. */
  uint64_t ms = wait <= 0 ? 0 : (uint64_t)((wait + 999) / 1000);
  plane->armed_for = due;
  uv_timer_start(&plane->timer, on_timer, ms, 0);
}

static void unlink_dial(dial_plane *plane, struct dial *d) {
  if (d->prev) d->prev->next = d->next;
  else plane->head = d->next;
  if (d->next) d->next->prev = d->prev;
  else plane->tail = d->prev;
  d->prev = d->next = NULL;
}

/* Listed by due time: nearly always the latest, so from the tail; one settled already (due 0) goes first at once. */
static void link_dial(dial_plane *plane, struct dial *d) {
  struct dial *after = d->due == 0 ? NULL : plane->tail;
  while (after && after->due > d->due) after = after->prev;
  d->prev = after;
  d->next = after ? after->next : plane->head;
  if (d->next) d->next->prev = d;
  else plane->tail = d;
  if (after) after->next = d;
  else plane->head = d;
  arm(plane, d->due);
}

/* Out of the plane's epoll set, while the socket is still ours: once it is handed over or closed, its number may be another socket's. */
static void stop_polling(dial_plane *plane, struct dial *d) {
  if (!d->polling) return;
  epoll_ctl(plane->epfd, EPOLL_CTL_DEL, d->fd, NULL);
  d->polling = false;
}

/* Over, and gone: its report waits for the end of the callback (report_ends). `error` 0: the socket is the reader's then, else it is closed. */
static void dial_end(dial_plane *plane, struct dial *d, int error) {
  unlink_dial(plane, d);
  plane->pending--;
  /* Nothing left to time: the timer must not keep the loop alive. */
  if (plane->head == NULL && plane->armed_for != INT64_MAX) {
    uv_timer_stop(&plane->timer);
    plane->armed_for = INT64_MAX;
  }
  stop_polling(plane, d);
  dial_report r = {.id = d->id, .fd = error == 0 ? d->fd : -1, .error = error};
  int fd = d->fd;
  free(d);
  if (error != 0 && fd >= 0) close(fd);
  if (plane->nends == plane->ends_cap) {
    size_t cap = plane->ends_cap ? plane->ends_cap * 2 : 16;
    dial_report *ends = realloc(plane->ends, cap * sizeof *ends);
    if (ends == NULL) {
      /* No memory to tell it: the socket is not left open. */
      if (r.fd >= 0) close(r.fd);
      r.fd = -1;
      r.error = ENOMEM;
      plane->report(plane->ctx, &r, 1);
      return;
    }
    plane->ends = ends;
    plane->ends_cap = cap;
  }
  plane->ends[plane->nends++] = r;
}

/* The ends of this callback, told in one call (the callback may dial and abort: its own ends come in a later callback). */
static void report_ends(dial_plane *plane) {
  while (plane->nends > 0) {
    dial_report *ends = plane->ends;
    size_t count = plane->nends, cap = plane->ends_cap;
    plane->ends = plane->reporting;
    plane->ends_cap = plane->reporting_cap;
    plane->reporting = ends;
    plane->reporting_cap = cap;
    plane->nends = 0;
    plane->report(plane->ctx, ends, count);
  }
}

/* Settled outside a poll callback: reported from the timer, on the next turn of the loop. */
static void settle_later(dial_plane *plane, struct dial *d, int error) {
  stop_polling(plane, d);
  d->settled = error;
  unlink_dial(plane, d);
  d->due = 0;
  link_dial(plane, d);
}

/* Connects ended: writable alone is connected; with EPOLLERR or EPOLLHUP the socket's own error says what happened (ECONNREFUSED...). */
static void on_events(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  dial_plane *plane = poll->data;
  struct epoll_event ready[EVENTS_MAX];
  int n = epoll_wait(plane->epfd, ready, EVENTS_MAX, 0);
  for (int i = 0; i < n; i++) {
    struct dial *d = ready[i].data.ptr;
    int err = 0;
    if (ready[i].events & (EPOLLERR | EPOLLHUP)) {
      socklen_t len = sizeof err;
      if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0) err = ECONNRESET;
    }
    dial_end(plane, d, err);
  }
  report_ends(plane);
}

static void on_idle(uv_idle_t *idle) {
  (void)idle;
}

static void on_check(uv_check_t *check);

/*
 * Timers run before the poll for I/O: a process busy or descheduled past a
 * connect timeout would find the expired timer and the handshake that
 * completed in time both waiting, and fail a dial that succeeded. So the
 * timeouts are declared after that poll, in a check handle.
 */
static void on_timer(uv_timer_t *timer) {
  dial_plane *plane = timer->data;
  plane->armed_for = INT64_MAX;
  uv_idle_start(&plane->idle, on_idle);
  uv_check_start(&plane->check, on_check);
}

static void on_check(uv_check_t *check) {
  dial_plane *plane = check->data;
  uv_idle_stop(&plane->idle);
  uv_check_stop(&plane->check);
  int64_t now = now_us();
  while (plane->head && plane->head->due <= now) {
    struct dial *d = plane->head;
    dial_end(plane, d, d->due == 0 ? d->settled : DIAL_TIMED_OUT);
  }
  if (plane->head) arm(plane, plane->head->due);
  report_ends(plane);
}

int dial_plane_create(uv_loop_t *loop, dial_report_fn report, void *ctx, dial_plane **out) {
  dial_plane *plane = calloc(1, sizeof *plane);
  if (plane == NULL) return ENOMEM;
  plane->loop = loop;
  plane->report = report;
  plane->ctx = ctx;
  plane->next_id = 1;
  plane->armed_for = INT64_MAX;
  plane->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (plane->epfd < 0) {
    int err = errno;
    free(plane);
    return err;
  }
  int err = uv_poll_init(loop, &plane->poll, plane->epfd);
  if (err != 0) {
    close(plane->epfd);
    free(plane);
    return -err;
  }
  uv_timer_init(loop, &plane->timer);
  uv_idle_init(loop, &plane->idle);
  uv_check_init(loop, &plane->check);
  plane->poll.data = plane->timer.data = plane->idle.data = plane->check.data = plane;
  /* Dials under way keep the loop alive through their timer, not through this. */
  uv_unref((uv_handle_t *)&plane->poll);
  uv_poll_start(&plane->poll, UV_READABLE, on_events);
  *out = plane;
  return 0;
}

int dial_plane_connect(dial_plane *plane, const struct sockaddr *addr, socklen_t len, uint32_t timeout_ms, uint64_t *id) {
  if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) return EAFNOSUPPORT;
  struct dial *d = calloc(1, sizeof *d);
  if (d == NULL) return ENOMEM;
  d->plane = plane;
  d->id = plane->next_id++;
  d->due = now_us() + (int64_t)timeout_ms * 1000;
  d->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  int err = d->fd < 0 ? errno : 0;
  if (err == 0) {
    /* As the JS plane's sockets: no Nagle delay on a forwarded stream. */
    int one = 1;
    setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc;
    do rc = connect(d->fd, addr, len);
    while (rc != 0 && errno == EINTR);
    err = rc == 0 ? 0 : errno == EINPROGRESS ? EINPROGRESS : errno;
  }
  *id = d->id;
  plane->pending++;
  if (err == EINPROGRESS) {
    /*
     * On loopback (a sidecar's backends, a local service) the handshake is
     * done within connect(), and a refusal too: one poll tells, and the dial
     * never enters the epoll set (an add, a wait and a delete saved).
     */
    struct pollfd now = {.fd = d->fd, .events = POLLOUT};
    if (poll(&now, 1, 0) == 1) {
      if (now.revents & (POLLERR | POLLHUP)) {
        socklen_t size = sizeof err;
        if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0) err = errno;
        if (err == 0) err = ECONNRESET;
      } else if (now.revents & POLLOUT) {
        err = 0;
      }
    }
  }
  if (err == EINPROGRESS) {
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = d};
    if (epoll_ctl(plane->epfd, EPOLL_CTL_ADD, d->fd, &ev) == 0) {
      d->polling = true;
      link_dial(plane, d);
      return 0;
    }
    err = errno;
  }
  /* Connected at once (0), or failed at once: told on the next turn, never from within this call. */
  d->settled = err;
  d->due = 0;
  link_dial(plane, d);
  return 0;
}

void dial_plane_abort(dial_plane *plane, uint64_t id) {
  for (struct dial *d = plane->head; d; d = d->next) {
    if (d->id == id) {
      if (d->due == 0) return; /* settled already */
      /* Its socket is closed when the abort is reported (dial_end), after its handle. */
      settle_later(plane, d, DIAL_ABORTED);
      return;
    }
  }
}

size_t dial_plane_pending(const dial_plane *plane) {
  return plane->pending;
}

static void free_plane(uv_handle_t *handle) {
  dial_plane *plane = handle->data;
  if (--plane->closing == 0) {
    free(plane->ends);
    free(plane->reporting);
    free(plane);
  }
}

void dial_plane_destroy(dial_plane *plane) {
  if (plane == NULL) return;
  while (plane->head) {
    struct dial *d = plane->head;
    unlink_dial(plane, d);
    stop_polling(plane, d);
    int fd = d->fd;
    free(d);
    if (fd >= 0) close(fd);
  }
  /* Ends not told yet (none outside a callback): their sockets are closed. */
  for (size_t i = 0; i < plane->nends; i++) {
    if (plane->ends[i].fd >= 0) close(plane->ends[i].fd);
  }
  plane->nends = 0;
  plane->closing = 4;
  /* The poll handle leaves the loop's epoll set in uv_close: then its descriptor can go. */
  uv_close((uv_handle_t *)&plane->poll, free_plane);
  close(plane->epfd);
  uv_close((uv_handle_t *)&plane->timer, free_plane);
  uv_close((uv_handle_t *)&plane->idle, free_plane);
  uv_close((uv_handle_t *)&plane->check, free_plane);
}
