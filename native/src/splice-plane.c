/* See splice-plane.h. Linux only: splice(2), epoll(7), eventfd(2), F_SETPIPE_SZ; libuv for the loop worker. */
#define _GNU_SOURCE
#include "splice-plane.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Pipe sizes tried, largest first (F_SETPIPE_SZ rounds to a power of two of pages). */
#define PIPE_MAX_SIZE (1u << 20)
#define PIPE_MIN_SIZE (16u << 10)
/* With no fs.pipe-user-pages-soft to read, or 0 (no limit): what pipes may take. */
#define PIPE_DEFAULT_BUDGET (256u << 20)
#define EVENTS_MAX 256
/* Rounds (each up to a pipe's size) per direction in one pump, so that one busy pair does not starve the others. */
#define PUMP_ROUNDS 16
/* The copy fallback's buffer, one per worker (the loop's and each thread's): never shared between threads. */
#define COPY_SIZE (64u << 10)
/* On the loop, a read into an empty pipe is a recv of at most this much into the worker's buffer and a send. */
#define SMALL_READ (16u << 10)

struct spipe {
  int r, w;
  size_t size;
};

struct pair;
struct worker;

/* What epoll hands back: a pair and which of its sockets (0 client, 1 backend). */
struct endpoint {
  struct pair *pair;
  int side;
};

/* One direction: bytes read from fd[side] into the pipe (held only while bytes are in it), written out to fd[1 - side]. */
struct direction {
  struct spipe pipe; /* r < 0: none held */
  size_t in_pipe;
  uint64_t bytes;
  bool eof;  /* the source's FIN was read */
  bool shut; /* and passed on: shutdown(SHUT_WR) of the destination */
};

struct pair {
  uint64_t id;
  struct worker *worker;
  int fd[2];
  /* Edge-triggered: set by an event, cleared only by EAGAIN. */
  bool readable[2], writable[2];
  struct direction dir[2];
  struct endpoint ep[2];
  /* EPOLLERR seen: read SO_ERROR before pumping. */
  bool check_error[2];
  /* EPOLLRDHUP seen: the peer's FIN is here (a read may take it with the last bytes, and no edge follows). */
  bool rdhup[2];
  /* EPOLLOUT asked for (on a thread always; on the loop once a write to the socket was refused). */
  bool out_watched[2];
  uint32_t idle_ms;
  int64_t last_active;
  /* When it was added, ms: a pair still moving bytes after migrate_ms leaves the loop. */
  int64_t started;
  bool registered;
  /* Finished: its sockets are closed, it waits on the graveyard to be freed after the batch. */
  bool dead;
  /* In worker->ready: it hit the per-pump limit with bytes left to move (threads only). */
  bool in_ready;
  /* On the loop: it hit the per-pump limit, so it goes to a thread. */
  bool bulky;
  /* Its last pump moved a byte (or a FIN). */
  bool moved;
  uint64_t batch;
  struct pair *prev, *next;
  /* In a thread's queue of pairs to take on. */
  struct pair *queued_next;
};

/* An abort for a thread, by id. */
struct command {
  uint64_t id;
  struct command *next;
};

/* The loop's worker, or one thread of the plane, and the pairs it moves. */
struct worker {
  splice_plane *plane;
  int epfd;
  int wakefd; /* threads only */
  bool on_loop;
  pthread_t thread;
  bool thread_started;

  /* Under plane->lock (threads only): pairs to take on (new, or from the loop) and aborts, in order. */
  struct pair *adopt_head, *adopt_tail;
  struct command *abort_head, *abort_tail;
  /* Something is queued and the thread was woken for it: the next producer need not wake it again. */
  bool woken;

  /* The worker's own (its thread's, or the loop's). Oldest first: a drain aborts pairs in the order they came, each found at the head. */
  struct pair *head, *tail;
  struct pair *graveyard;
  struct pair **ready, **pending;
  size_t nready, ready_cap;
  int64_t next_idle_check; /* INT64_MAX: no pair with an idle timeout */
  uint64_t batch;
  char *copy;
};

/* The loop's side of the plane: its handles, allocated apart so that they outlive the plane until libuv has closed them. */
struct loop_side {
  uv_poll_t poll;   /* the loop worker's epoll set is readable */
  uv_timer_t timer; /* the loop worker's next idle check */
  uv_async_t async; /* reports are waiting (from the threads, or made outside a callback of the loop) */
  int closing;
  splice_plane *plane; /* NULL once the plane is gone */
};

struct splice_plane {
  splice_report_fn report;
  void *ctx;
  uint32_t nworkers;
  struct worker workers[SPLICE_THREADS_MAX];
  uint64_t migrate_bytes;
  int64_t migrate_ms;

  /* The loop's. */
  struct worker loop;
  struct loop_side *uv;
  pthread_t loop_thread;
  /* Reports to make, taken from the threads' (swapped with `delivering` to call the callback). */
  splice_report *reports, *delivering;
  size_t nreports, reports_cap, delivering_cap;
  /* Inside a callback of the loop that delivers the reports at its end (a turn, a delivery). */
  int in_callback;
  /* Pairs added and not reported yet: the async handle keeps the loop alive while there are any. */
  uint32_t unreported;
  int64_t idle_armed_for;

  pthread_mutex_t lock;
  bool stop;
  uint64_t next_id;
  uint32_t pairs;
  uint32_t pipes_open;
  uint32_t pipes_max;
  uint64_t pipe_bytes;
  uint64_t pipe_budget;
  struct spipe pool[SPLICE_POOL_MAX];
  uint32_t pooled;
  uint32_t loop_pairs;
  uint64_t migrated;
  /* The threads' reports, for the loop. */
  splice_report *thread_reports;
  size_t nthread_reports, thread_reports_cap;
  /* Atomic: written by the threads, read by stats. */
  uint64_t copied;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Half of fs.pipe-user-pages-soft (the limit is per user, and other processes have pipes too). */
static uint64_t read_pipe_budget(void) {
  FILE *f = fopen("/proc/sys/fs/pipe-user-pages-soft", "re");
  if (f == NULL) return PIPE_DEFAULT_BUDGET;
  unsigned long long pages = 0;
  int ok = fscanf(f, "%llu", &pages);
  fclose(f);
  if (ok != 1 || pages == 0) return PIPE_DEFAULT_BUDGET;
  long page = sysconf(_SC_PAGESIZE);
  return pages * (uint64_t)(page > 0 ? page : 4096) / 2;
}

/* --- pipes ----------------------------------------------------------------- */

/* The largest size from 1 MiB down to 16 KiB for which two more pipes stay within the budget (under plane->lock). */
static size_t pipe_target_size(const splice_plane *plane) {
  for (size_t size = PIPE_MAX_SIZE; size > PIPE_MIN_SIZE; size >>= 1) {
    if (plane->pipe_bytes + 2 * size <= plane->pipe_budget) return size;
  }
  return PIPE_MIN_SIZE;
}

/* A pipe for a direction with bytes to move: a pooled one, else a new one while under pipes_max. false: none. */
static bool pipe_take(splice_plane *plane, struct spipe *out) {
  pthread_mutex_lock(&plane->lock);
  if (plane->pooled > 0) {
    *out = plane->pool[--plane->pooled];
    pthread_mutex_unlock(&plane->lock);
    return true;
  }
  bool room = plane->pipes_open < plane->pipes_max;
  size_t target = pipe_target_size(plane);
  if (room) plane->pipes_open++;
  pthread_mutex_unlock(&plane->lock);
  if (!room) return false;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    pthread_mutex_lock(&plane->lock);
    plane->pipes_open--;
    pthread_mutex_unlock(&plane->lock);
    return false;
  }
  /* Over the per-user limits an unprivileged F_SETPIPE_SZ fails (EPERM): keep the size the pipe has. */
  int size = fcntl(fds[1], F_SETPIPE_SZ, (int)target);
  if (size < 0) size = fcntl(fds[1], F_GETPIPE_SZ);
  if (size <= 0) size = 4096;
  out->r = fds[0];
  out->w = fds[1];
  out->size = (size_t)size;
  pthread_mutex_lock(&plane->lock);
  plane->pipe_bytes += out->size;
  pthread_mutex_unlock(&plane->lock);
  return true;
}

/* An empty pipe goes back to the pool when there is room and the budget is not tight; else (or with bytes in it) it is closed. */
static void pipe_give(splice_plane *plane, struct spipe *p, bool empty) {
  if (p->r < 0) return;
  struct spipe pipe = *p;
  p->r = p->w = -1;
  pthread_mutex_lock(&plane->lock);
  bool pooled = empty && plane->pooled < SPLICE_POOL_MAX && plane->pipe_bytes <= plane->pipe_budget / 2;
  if (pooled) {
    plane->pool[plane->pooled++] = pipe;
  } else {
    plane->pipes_open--;
    plane->pipe_bytes -= pipe.size;
  }
  pthread_mutex_unlock(&plane->lock);
  if (!pooled) {
    close(pipe.r);
    close(pipe.w);
  }
}

/* --- reports ---------------------------------------------------------------- */

static bool reports_grow(splice_report **array, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t grown = *cap ? *cap * 2 : 64;
  while (grown < need) grown *= 2;
  splice_report *bigger = realloc(*array, grown * sizeof *bigger);
  if (bigger == NULL) return false;
  *array = bigger;
  *cap = grown;
  return true;
}

/* On the loop: a report to make at the end of the callback under way, or from the async handle's when there is none (within splice_plane_add or splice_plane_abort). */
static void loop_report(splice_plane *plane, const splice_report *r) {
  if (!reports_grow(&plane->reports, &plane->reports_cap, plane->nreports + 1)) return;
  plane->reports[plane->nreports++] = *r;
  if (plane->in_callback == 0) uv_async_send(&plane->uv->async);
}

/* --- the workers ------------------------------------------------------------ */

static void wake(struct worker *w) {
  uint64_t one = 1;
  ssize_t n;
  do n = write(w->wakefd, &one, sizeof one);
  while (n < 0 && errno == EINTR);
}

/* Close a socket with a TCP RST: the peer learns its stream was cut. */
static void reset_close(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

/* At the tail of the worker's list. */
static void link_pair(struct worker *w, struct pair *p) {
  p->next = NULL;
  p->prev = w->tail;
  if (w->tail) w->tail->next = p;
  else w->head = p;
  w->tail = p;
}

/* Out of the worker's list (a pair in no list, prev and next NULL, is left as it is). */
static void unlink_pair(struct worker *w, struct pair *p) {
  if (p->prev) p->prev->next = p->next;
  else if (w->head == p) w->head = p->next;
  if (p->next) p->next->prev = p->prev;
  else if (w->tail == p) w->tail = p->prev;
  p->prev = p->next = NULL;
}

/* Unlink, close both sockets (reset or plainly), give the pipes back, report. */
static void pair_finish(struct worker *w, struct pair *p, int end, int error, bool reset, bool report) {
  splice_plane *plane = w->plane;
  for (int side = 0; side < 2; side++) {
    if (p->registered) epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->fd[side], NULL);
    if (reset) reset_close(p->fd[side]);
    else close(p->fd[side]);
  }
  unlink_pair(w, p);
  splice_report r = {.id = p->id, .bytes_in = p->dir[0].bytes, .bytes_out = p->dir[1].bytes, .end = end, .error = error};
  for (int d = 0; d < 2; d++) pipe_give(plane, &p->dir[d].pipe, p->dir[d].in_pipe == 0);
  bool wake_loop = false;
  pthread_mutex_lock(&plane->lock);
  plane->pairs--;
  if (w->on_loop) {
    plane->loop_pairs--;
  } else if (report && reports_grow(&plane->thread_reports, &plane->thread_reports_cap, plane->nthread_reports + 1)) {
    /* The first report since the loop took the last ones wakes it; the others go with it. */
    wake_loop = plane->nthread_reports == 0;
    plane->thread_reports[plane->nthread_reports++] = r;
  }
  pthread_mutex_unlock(&plane->lock);
  p->dead = true;
  p->next = w->graveyard;
  w->graveyard = p;
  if (report && w->on_loop) loop_report(plane, &r);
  if (wake_loop) uv_async_send(&plane->uv->async);
}

static void free_graveyard(struct worker *w) {
  while (w->graveyard) {
    struct pair *next = w->graveyard->next;
    free(w->graveyard);
    w->graveyard = next;
  }
}

/* Pumped again on the next turn of the thread, without waiting for an event. */
static void mark_ready(struct worker *w, struct pair *p) {
  if (p->in_ready) return;
  if (w->nready == w->ready_cap) {
    size_t cap = w->ready_cap ? w->ready_cap * 2 : 64;
    struct pair **ready = realloc(w->ready, cap * sizeof *ready);
    if (ready) w->ready = ready;
    struct pair **pending = realloc(w->pending, cap * sizeof *pending);
    if (pending) w->pending = pending;
    if (!ready || !pending) return; /* then its next event moves it on */
    w->ready_cap = cap;
  }
  p->in_ready = true;
  w->ready[w->nready++] = p;
}

/*
 * The socket takes no more: wait for it to be writable. On the loop a
 * socket is watched for EPOLLOUT only from then on: a connected socket is
 * writable from the start, and asking at once would cost an event of each
 * new pair (and a turn of the loop) that says nothing.
 */
static void blocked(struct worker *w, struct pair *p, int side) {
  p->writable[side] = false;
  if (p->out_watched[side]) return;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &p->ep[side]};
  /* The change re-reads the socket's state: room made since the refusal is an event already. */
  if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, p->fd[side], &ev) == 0) p->out_watched[side] = true;
  else p->writable[side] = true; /* cannot wait for it: tried again at the next pump */
}

static void pair_fail(struct worker *w, struct pair *p, int side, int error) {
  pair_finish(w, p, side == 0 ? SPLICE_END_CLIENT_ERROR : SPLICE_END_BACKEND_ERROR, error, true, true);
}

/* What one step of a direction did. */
enum step { STEP_NONE, STEP_MOVED, STEP_RETRY, STEP_GONE };

/*
 * What a recv of 0 or less from direction d's source says: its FIN, an
 * empty socket (wait for the next edge), a retry, or a failure of the pair.
 */
static enum step read_end(struct worker *w, struct pair *p, int d, ssize_t n) {
  if (n == 0) {
    p->dir[d].eof = true;
    return STEP_MOVED;
  }
  if (errno == EAGAIN) {
    p->readable[d] = false;
    return STEP_NONE;
  }
  if (errno == EINTR) return STEP_RETRY;
  pair_fail(w, p, d, errno);
  return STEP_GONE;
}

/*
 * The copy fallback, for a direction without a pipe: peek what the source
 * has, send what the destination takes, then drop exactly that from the
 * source. Nothing is held here between steps.
 */
static enum step copy_step(struct worker *w, struct pair *p, int d) {
  struct direction *x = &p->dir[d];
  int src = p->fd[d], dst = p->fd[1 - d];
  if (!p->writable[1 - d]) return STEP_NONE;
  ssize_t n = recv(src, w->copy, COPY_SIZE, MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return read_end(w, p, d, n);
  ssize_t sent = send(dst, w->copy, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno == EAGAIN) {
      blocked(w, p, 1 - d);
      return STEP_NONE;
    }
    if (errno == EINTR) return STEP_RETRY;
    pair_fail(w, p, 1 - d, errno);
    return STEP_GONE;
  }
  ssize_t dropped;
  do dropped = recv(src, NULL, (size_t)sent, MSG_TRUNC | MSG_DONTWAIT);
  while (dropped < 0 && errno == EINTR);
  if (dropped != sent) {
    /* Cannot happen (the bytes were there a moment ago): the stream is not whole any more, so it is cut. */
    pair_fail(w, p, d, dropped < 0 ? errno : EIO);
    return STEP_GONE;
  }
  x->bytes += (uint64_t)sent;
  __atomic_fetch_add(&w->plane->copied, (uint64_t)sent, __ATOMIC_RELAXED);
  return STEP_MOVED;
}

/*
 * On the loop, where pairs are young and their messages small: a read into
 * an empty pipe is a recv into the worker's buffer and a send, cheaper
 * than two splices for a few bytes (no pipe pages, no skb page
 * references). What the destination does not take at once goes into the
 * pipe, which is empty and at least as large as the read, so no byte is
 * held outside the kernel. A read shorter than asked for emptied the
 * socket: anything that comes after it raises a new edge, so the socket is
 * not tried again until then (no recv just to be told EAGAIN). Not once
 * the FIN is known to be there: a recv takes it with the last bytes
 * (returning them, and 0 only on the next call), and no edge follows.
 */
static enum step small_step(struct worker *w, struct pair *p, int d) {
  struct direction *x = &p->dir[d];
  int src = p->fd[d], dst = p->fd[1 - d];
  size_t want = x->pipe.size < SMALL_READ ? x->pipe.size : SMALL_READ;
  ssize_t n = recv(src, w->copy, want, MSG_DONTWAIT);
  if (n <= 0) return read_end(w, p, d, n);
  if ((size_t)n < want && !p->rdhup[d]) p->readable[d] = false;
  x->bytes += (uint64_t)n;
  ssize_t sent;
  do sent = send(dst, w->copy, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno != EAGAIN) {
      pair_fail(w, p, 1 - d, errno);
      return STEP_GONE;
    }
    blocked(w, p, 1 - d);
    sent = 0;
  }
  if (sent < n) {
    size_t rest = (size_t)(n - sent);
    ssize_t put;
    do put = write(x->pipe.w, w->copy + sent, rest);
    while (put < 0 && errno == EINTR);
    if (put != (ssize_t)rest) {
      /* Cannot happen (an empty pipe at least as large as the read): the stream is not whole any more, so it is cut. */
      pair_fail(w, p, d, put < 0 ? errno : EIO);
      return STEP_GONE;
    }
    x->in_pipe = rest;
  }
  return STEP_MOVED;
}

/*
 * Move what can be moved, both ways. Returns false when the pair is gone
 * (finished or failed). splice's EAGAIN means "socket empty" or "pipe
 * full" (slots, not bytes: a pipe can be full below its size), so the
 * source is taken as drained only when the pipe was empty; otherwise the
 * pipe is emptied first and the read tried again. With edge-triggered
 * epoll, that is the only safe place to wait for the source. A pipe empty
 * at the end goes back to the pool, so an idle pair holds none. A pair
 * that hits the per-pump limit is pumped again on the thread's next turn
 * without an event; on the loop it is marked bulky, to go to a thread.
 */
static bool pair_pump(struct worker *w, struct pair *p) {
  bool moved_any = false;
  for (int d = 0; d < 2; d++) {
    struct direction *x = &p->dir[d];
    int src = p->fd[d], dst = p->fd[1 - d];
    for (int round = 0;; round++) {
      if (round == PUMP_ROUNDS) {
        if (w->on_loop) p->bulky = true;
        else mark_ready(w, p);
        break;
      }
      bool moved = false;
      if (x->in_pipe > 0 && p->writable[1 - d]) {
        ssize_t n = splice(x->pipe.r, NULL, dst, NULL, x->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          x->in_pipe -= (size_t)n;
          moved = true;
        } else if (n < 0 && errno == EAGAIN) {
          blocked(w, p, 1 - d);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else {
          pair_fail(w, p, 1 - d, n < 0 ? errno : EPIPE);
          return false;
        }
      }
      if (!x->eof && p->readable[d] && x->pipe.r < 0) pipe_take(w->plane, &x->pipe);
      if (!x->eof && p->readable[d] && x->pipe.r < 0) {
        enum step step = copy_step(w, p, d);
        if (step == STEP_GONE) return false;
        if (step == STEP_RETRY) continue;
        if (step == STEP_MOVED) moved = true;
      } else if (w->on_loop && !x->eof && p->readable[d] && x->in_pipe == 0 && p->writable[1 - d]) {
        enum step step = small_step(w, p, d);
        if (step == STEP_GONE) return false;
        if (step == STEP_RETRY) continue;
        if (step == STEP_MOVED) moved = true;
      } else if (!x->eof && p->readable[d] && x->in_pipe < x->pipe.size) {
        ssize_t n = splice(src, NULL, x->pipe.w, NULL, x->pipe.size - x->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          x->in_pipe += (size_t)n;
          x->bytes += (uint64_t)n;
          moved = true;
        } else if (n == 0) {
          x->eof = true;
          moved = true;
        } else if (errno == EAGAIN) {
          if (x->in_pipe == 0) p->readable[d] = false;
        } else if (errno == EINTR) {
          continue;
        } else {
          pair_fail(w, p, d, errno);
          return false;
        }
      }
      if (!moved) break;
      moved_any = true;
    }
    /* Kept while the pair is to be pumped again at once (it hit PUMP_ROUNDS): the pipe would be taken back at once. */
    if (x->in_pipe == 0 && !p->in_ready) pipe_give(w->plane, &x->pipe, true);
    if (x->eof && x->in_pipe == 0 && !x->shut) {
      /*
       * The last FIN needs no shutdown: both sockets are closed now, with
       * nothing left to read in either (each was read to its FIN), so the
       * close sends it.
       */
      if (!p->dir[1 - d].shut && shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) {
        pair_fail(w, p, 1 - d, errno);
        return false;
      }
      x->shut = true;
    }
  }
  p->moved = moved_any;
  if (moved_any) p->last_active = now_ms();
  if (p->dir[0].shut && p->dir[1].shut) {
    pair_finish(w, p, SPLICE_END_CLOSED, 0, false, true);
    return false;
  }
  return true;
}

/*
 * From the loop to a thread (always the same one for an id, so that an
 * abort finds it): out of the loop's epoll set and list, into the thread's
 * queue, with its pipes, its byte counts, its FINs seen and passed on. The
 * thread takes it as a new pair (every socket taken as readable and
 * writable, which costs at most an EAGAIN), so no edge is lost.
 */
static void migrate(struct worker *loop, struct pair *p) {
  splice_plane *plane = loop->plane;
  for (int side = 0; side < 2; side++) epoll_ctl(loop->epfd, EPOLL_CTL_DEL, p->fd[side], NULL);
  p->registered = false;
  p->bulky = false;
  /* Batches are counted per worker: a number of the loop's must not pass for one of the thread's. */
  p->batch = 0;
  unlink_pair(loop, p);
  struct worker *w = &plane->workers[p->id % plane->nworkers];
  p->worker = w;
  p->queued_next = NULL;
  pthread_mutex_lock(&plane->lock);
  if (w->adopt_tail) w->adopt_tail->queued_next = p;
  else w->adopt_head = p;
  w->adopt_tail = p;
  plane->loop_pairs--;
  plane->migrated++;
  bool woken = w->woken;
  w->woken = true;
  pthread_mutex_unlock(&plane->lock);
  if (!woken) wake(w);
}

/* A pump, and on the loop the move of a pair that proved bulky or long to a thread. */
static void pump(struct worker *w, struct pair *p) {
  if (!pair_pump(w, p) || !w->on_loop) return;
  splice_plane *plane = w->plane;
  bool bulky = p->bulky || p->dir[0].bytes + p->dir[1].bytes >= plane->migrate_bytes;
  /* Long: still moving bytes both ways (a pair that is closing is not worth the move). */
  bool longer = p->moved && !p->dir[0].eof && !p->dir[1].eof && p->last_active - p->started >= plane->migrate_ms;
  if (bulky || longer) migrate(w, p);
}

/* A pair taken on by this worker: new (on the loop), or from the loop (on a thread). */
static void pair_start(struct worker *w, struct pair *p) {
  p->worker = w;
  link_pair(w, p);
  for (int side = 0; side < 2; side++) {
    p->ep[side].pair = p;
    p->ep[side].side = side;
    p->out_watched[side] = !w->on_loop;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (w->on_loop ? 0 : EPOLLOUT), .data.ptr = &p->ep[side]};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, p->fd[side], &ev) != 0) {
      int err = errno;
      if (side == 1) epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->fd[0], NULL);
      pair_fail(w, p, side, err);
      return;
    }
  }
  p->registered = true;
  p->readable[0] = p->readable[1] = p->writable[0] = p->writable[1] = true;
  if (p->idle_ms > 0 && p->last_active + p->idle_ms < w->next_idle_check) w->next_idle_check = p->last_active + p->idle_ms;
  pump(w, p);
}

/* A thread's queue: the pairs to take on first, then the aborts, so that an abort always finds a pair queued before it. */
static void run_commands(struct worker *w) {
  uint64_t count;
  while (read(w->wakefd, &count, sizeof count) > 0) {
  }
  pthread_mutex_lock(&w->plane->lock);
  struct pair *adopt = w->adopt_head;
  struct command *c = w->abort_head;
  w->adopt_head = w->adopt_tail = NULL;
  w->abort_head = w->abort_tail = NULL;
  w->woken = false;
  pthread_mutex_unlock(&w->plane->lock);
  while (adopt) {
    struct pair *next = adopt->queued_next;
    adopt->queued_next = NULL;
    pair_start(w, adopt);
    adopt = next;
  }
  while (c) {
    struct command *next = c->next;
    for (struct pair *p = w->head; p; p = p->next) {
      if (p->id == c->id) {
        pair_finish(w, p, SPLICE_END_ABORTED, 0, true, true);
        break;
      }
    }
    free(c);
    c = next;
  }
}

/* End idle pairs; compute when the next one may be. Plainly closed unless bytes are stuck in a pipe. */
static void check_idle(struct worker *w, int64_t now) {
  int64_t next = INT64_MAX;
  struct pair *p = w->head;
  while (p) {
    struct pair *following = p->next;
    if (p->idle_ms > 0) {
      int64_t due = p->last_active + p->idle_ms;
      if (due <= now) {
        bool stuck = p->dir[0].in_pipe > 0 || p->dir[1].in_pipe > 0;
        pair_finish(w, p, SPLICE_END_IDLE, 0, stuck, true);
      } else if (due < next) {
        next = due;
      }
    }
    p = following;
  }
  w->next_idle_check = next;
}

/*
 * One turn: read a batch of events, then pump each pair of the batch once,
 * and the pairs left ready by the last turn. Pairs finished meanwhile are
 * freed only after the turn, so no event or list refers to freed memory.
 * -1 when epoll_wait fails.
 */
static int worker_turn(struct worker *w, int timeout) {
  struct epoll_event events[EVENTS_MAX];
  struct pair *dirty[EVENTS_MAX];
  int n = epoll_wait(w->epfd, events, EVENTS_MAX, timeout);
  if (n < 0) {
    if (errno != EINTR) return -1;
    n = 0;
  }
  uint64_t batch = ++w->batch;
  bool commands = false;
  int ndirty = 0;
  for (int i = 0; i < n; i++) {
    if (events[i].data.ptr == NULL) {
      commands = true;
      continue;
    }
    struct endpoint *ep = events[i].data.ptr;
    struct pair *p = ep->pair;
    uint32_t e = events[i].events;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) p->readable[ep->side] = true;
    if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) p->rdhup[ep->side] = true;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) p->writable[ep->side] = true;
    /* A reset or a timeout sets the socket's error, which EPOLLERR shows until it is read: EPOLLHUP alone is both ways closed. */
    if (e & EPOLLERR) p->check_error[ep->side] = true;
    if (p->batch != batch) {
      p->batch = batch;
      dirty[ndirty++] = p;
    }
  }
  size_t npending = w->nready;
  struct pair **pending = w->ready;
  w->ready = w->pending;
  w->pending = pending;
  w->nready = 0;
  for (size_t i = 0; i < npending; i++) pending[i]->in_ready = false;
  /*
   * A reset shows as EPOLLERR; after a half-close (our FIN sent, theirs
   * read) it is the only sign, with SO_ERROR EPIPE or ECONNRESET, since
   * nothing is left to read or write that would fail.
   */
  for (int i = 0; i < ndirty; i++) {
    struct pair *p = dirty[i];
    bool gone = false;
    for (int side = 0; side < 2 && !gone; side++) {
      if (!p->check_error[side]) continue;
      p->check_error[side] = false;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(p->fd[side], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        pair_fail(w, p, side, err);
        gone = true;
      }
    }
    /* A pair that left for a thread in this batch is the thread's: not touched again here (each pair is once in `dirty`). */
    if (!gone) pump(w, p);
  }
  for (size_t i = 0; i < npending; i++) {
    struct pair *p = pending[i];
    if (!p->dead && p->batch != batch) pump(w, p);
  }
  if (commands) run_commands(w);
  int64_t now = now_ms();
  if (w->next_idle_check <= now) check_idle(w, now);
  free_graveyard(w);
  return n;
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  splice_plane *plane = w->plane;
  for (;;) {
    int timeout = -1;
    if (w->nready > 0) {
      timeout = 0;
    } else if (w->next_idle_check != INT64_MAX) {
      int64_t wait = w->next_idle_check - now_ms();
      timeout = wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
    }
    if (worker_turn(w, timeout) < 0) break;
    if (__atomic_load_n(&plane->stop, __ATOMIC_ACQUIRE)) break;
  }
  return NULL;
}

/* --- the loop --------------------------------------------------------------- */

static void arm_idle_timer(splice_plane *plane);

/*
 * Hand the reports waiting (the loop's, then the threads') to the callback,
 * until none is left: the callback may add or abort pairs, which may end
 * at once. The loop worker's dead pairs are freed once no callback is
 * under way.
 */
static void deliver(splice_plane *plane) {
  plane->in_callback++;
  for (;;) {
    pthread_mutex_lock(&plane->lock);
    size_t taken = plane->nthread_reports;
    if (taken > 0 && reports_grow(&plane->reports, &plane->reports_cap, plane->nreports + taken)) {
      memcpy(plane->reports + plane->nreports, plane->thread_reports, taken * sizeof *plane->reports);
      plane->nreports += taken;
      plane->nthread_reports = 0;
    }
    pthread_mutex_unlock(&plane->lock);
    size_t count = plane->nreports;
    if (count == 0) break;
    splice_report *reports = plane->reports;
    size_t cap = plane->reports_cap;
    plane->reports = plane->delivering;
    plane->reports_cap = plane->delivering_cap;
    plane->delivering = reports;
    plane->delivering_cap = cap;
    plane->nreports = 0;
    plane->unreported -= count < plane->unreported ? (uint32_t)count : plane->unreported;
    plane->report(plane->ctx, reports, count);
  }
  plane->in_callback--;
  if (plane->in_callback == 0) free_graveyard(&plane->loop);
  if (plane->unreported == 0) uv_unref((uv_handle_t *)&plane->uv->async);
  arm_idle_timer(plane);
}

static void on_loop_timer(uv_timer_t *timer) {
  struct loop_side *uv = timer->data;
  splice_plane *plane = uv->plane;
  if (plane == NULL) return;
  plane->idle_armed_for = INT64_MAX;
  plane->in_callback++;
  int64_t now = now_ms();
  if (plane->loop.next_idle_check <= now) check_idle(&plane->loop, now);
  plane->in_callback--;
  deliver(plane);
}

/* The loop worker's next idle check, on the loop's timer (only ever brought forward; a check that finds nothing due re-arms it). */
static void arm_idle_timer(splice_plane *plane) {
  int64_t due = plane->loop.next_idle_check;
  if (due == INT64_MAX || due >= plane->idle_armed_for) return;
  int64_t wait = due - now_ms();
  plane->idle_armed_for = due;
  uv_timer_start(&plane->uv->timer, on_loop_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* The loop worker's epoll set is readable: one turn, then the reports. */
static void on_loop_events(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  struct loop_side *uv = poll->data;
  splice_plane *plane = uv->plane;
  if (plane == NULL) return;
  plane->in_callback++;
  worker_turn(&plane->loop, 0);
  plane->in_callback--;
  deliver(plane);
}

static void on_async(uv_async_t *async) {
  struct loop_side *uv = async->data;
  if (uv->plane != NULL) deliver(uv->plane);
}

static void free_loop_side(uv_handle_t *handle) {
  struct loop_side *uv = handle->data;
  if (--uv->closing == 0) free(uv);
}

/* --- the callers' side ------------------------------------------------- */

static void worker_close(struct worker *w) {
  if (w->epfd >= 0) close(w->epfd);
  if (w->wakefd >= 0) close(w->wakefd);
  free(w->copy);
  free(w->ready);
  free(w->pending);
}

static int worker_open(splice_plane *plane, struct worker *w, bool on_loop) {
  w->plane = plane;
  w->on_loop = on_loop;
  w->next_idle_check = INT64_MAX;
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (w->epfd < 0) return errno;
  w->copy = malloc(COPY_SIZE);
  if (w->copy == NULL) return ENOMEM;
  if (on_loop) return 0;
  w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wakefd < 0) return errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) != 0) return errno;
  return 0;
}

static void plane_stop_threads(splice_plane *plane) {
  __atomic_store_n(&plane->stop, true, __ATOMIC_RELEASE);
  for (uint32_t i = 0; i < plane->nworkers; i++) {
    struct worker *w = &plane->workers[i];
    if (!w->thread_started) continue;
    wake(w);
    pthread_join(w->thread, NULL);
    w->thread_started = false;
  }
}

static void plane_free(splice_plane *plane) {
  for (uint32_t i = 0; i < plane->nworkers; i++) worker_close(&plane->workers[i]);
  worker_close(&plane->loop);
  free(plane->reports);
  free(plane->delivering);
  free(plane->thread_reports);
  pthread_mutex_destroy(&plane->lock);
  free(plane);
}

/* The loop's handles, watching the loop worker's epoll set. 0 or an errno value; on failure nothing is left to close. */
static int loop_open(splice_plane *plane, uv_loop_t *loop) {
  struct loop_side *uv = calloc(1, sizeof *uv);
  if (uv == NULL) return ENOMEM;
  uv->plane = plane;
  int err = uv_poll_init(loop, &uv->poll, plane->loop.epfd);
  if (err != 0) {
    free(uv);
    return -err;
  }
  uv_timer_init(loop, &uv->timer);
  err = uv_async_init(loop, &uv->async, on_async);
  uv->poll.data = uv->timer.data = uv;
  if (err != 0) {
    uv->closing = 2;
    uv_close((uv_handle_t *)&uv->poll, free_loop_side);
    uv_close((uv_handle_t *)&uv->timer, free_loop_side);
    return -err;
  }
  uv->async.data = uv;
  /* Only pairs keep the loop alive, through the async handle, while any is not reported (splice_plane_add, deliver). */
  uv_unref((uv_handle_t *)&uv->poll);
  uv_unref((uv_handle_t *)&uv->timer);
  uv_unref((uv_handle_t *)&uv->async);
  uv_poll_start(&uv->poll, UV_READABLE, on_loop_events);
  plane->uv = uv;
  return 0;
}

static void loop_close(splice_plane *plane) {
  struct loop_side *uv = plane->uv;
  if (uv == NULL) return;
  plane->uv = NULL;
  uv->plane = NULL;
  uv->closing = 3;
  uv_close((uv_handle_t *)&uv->poll, free_loop_side);
  uv_close((uv_handle_t *)&uv->timer, free_loop_side);
  uv_close((uv_handle_t *)&uv->async, free_loop_side);
}

int splice_plane_create(uv_loop_t *loop, splice_report_fn report, void *ctx, const splice_plane_options *options, splice_plane **out) {
  splice_plane *plane = calloc(1, sizeof *plane);
  if (plane == NULL) return ENOMEM;
  uint32_t threads = options ? options->threads : 0;
  /*
   * Unless told: one thread per CPU, at most two. On two CPUs shared with
   * the peers (iperf3 both ends), four streams moved 1.09x the bytes on two
   * threads (0.95-1.32x over three runs) for about 1.16x the CPU per byte
   * (fewer events per epoll_wait); one stream is on one thread either way.
   */
  if (threads == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    threads = cpus >= 2 ? 2 : 1;
  }
  if (threads > SPLICE_THREADS_MAX) threads = SPLICE_THREADS_MAX;
  plane->report = report;
  plane->ctx = ctx;
  plane->next_id = 1;
  plane->pipes_max = options && options->pipes_max > 0 ? options->pipes_max : SPLICE_PIPES_DEFAULT;
  plane->migrate_bytes = options && options->migrate_bytes > 0 ? options->migrate_bytes : SPLICE_MIGRATE_BYTES_DEFAULT;
  plane->migrate_ms = options && options->migrate_ms > 0 ? options->migrate_ms : SPLICE_MIGRATE_MS_DEFAULT;
  plane->pipe_budget = read_pipe_budget();
  plane->idle_armed_for = INT64_MAX;
  plane->loop_thread = pthread_self();
  int err = pthread_mutex_init(&plane->lock, NULL);
  if (err != 0) {
    free(plane);
    return err;
  }
  for (uint32_t i = 0; i < threads; i++) plane->workers[i].epfd = plane->workers[i].wakefd = -1;
  plane->loop.epfd = plane->loop.wakefd = -1;
  plane->nworkers = threads;
  err = worker_open(plane, &plane->loop, true);
  for (uint32_t i = 0; i < threads && err == 0; i++) err = worker_open(plane, &plane->workers[i], false);
  /* Signals are for the main thread (SIGCHLD for the reaper, SIGTERM...); SIGPIPE stays pending here, harmless. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  for (uint32_t i = 0; i < threads && err == 0; i++) {
    struct worker *w = &plane->workers[i];
    err = pthread_create(&w->thread, NULL, worker_main, w);
    w->thread_started = err == 0;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err == 0) err = loop_open(plane, loop);
  if (err != 0) {
    plane_stop_threads(plane);
    plane_free(plane);
    return err;
  }
  *out = plane;
  return 0;
}

int splice_plane_add(splice_plane *plane, int client_fd, int backend_fd, uint32_t idle_ms, bool nonblocking, uint64_t *id) {
  struct pair *p = calloc(1, sizeof *p);
  if (p == NULL) return ENOMEM;
  p->fd[0] = client_fd;
  p->fd[1] = backend_fd;
  p->idle_ms = idle_ms;
  p->dir[0].pipe.r = p->dir[0].pipe.w = p->dir[1].pipe.r = p->dir[1].pipe.w = -1;
  for (int side = 0; side < 2 && !nonblocking; side++) {
    int flags = fcntl(p->fd[side], F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(p->fd[side], F_SETFL, flags | O_NONBLOCK);
  }
  p->started = p->last_active = now_ms();
  pthread_mutex_lock(&plane->lock);
  if (plane->stop) {
    pthread_mutex_unlock(&plane->lock);
    free(p);
    return ESHUTDOWN;
  }
  p->id = plane->next_id++;
  plane->pairs++;
  plane->loop_pairs++;
  pthread_mutex_unlock(&plane->lock);
  *id = p->id;
  if (plane->unreported++ == 0) uv_ref((uv_handle_t *)&plane->uv->async);
  /* Pumped at once: the client's first bytes are usually there already. An end is reported later, from the async handle. */
  pair_start(&plane->loop, p);
  arm_idle_timer(plane);
  return 0;
}

void splice_plane_abort(splice_plane *plane, uint64_t id) {
  for (struct pair *p = plane->loop.head; p; p = p->next) {
    if (p->id == id) {
      pair_finish(&plane->loop, p, SPLICE_END_ABORTED, 0, true, true);
      return;
    }
  }
  /* Not on the loop: on its thread, or queued to it (the queue takes pairs before aborts), or over (then ignored there). */
  struct command *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  c->id = id;
  struct worker *w = &plane->workers[id % plane->nworkers];
  pthread_mutex_lock(&plane->lock);
  if (w->abort_tail) w->abort_tail->next = c;
  else w->abort_head = c;
  w->abort_tail = c;
  bool woken = w->woken;
  w->woken = true;
  pthread_mutex_unlock(&plane->lock);
  if (!woken) wake(w);
}

void splice_plane_stats_read(splice_plane *plane, splice_plane_stats *out) {
  pthread_mutex_lock(&plane->lock);
  out->pairs = plane->pairs;
  out->loop_pairs = plane->loop_pairs;
  out->migrated = plane->migrated;
  out->pipes_open = plane->pipes_open;
  out->pipes_max = plane->pipes_max;
  out->threads = plane->nworkers;
  out->pipe_bytes = plane->pipe_bytes;
  out->pipe_budget = plane->pipe_budget;
  out->pooled_pipes = plane->pooled;
  pthread_mutex_unlock(&plane->lock);
  out->copied_bytes = __atomic_load_n(&plane->copied, __ATOMIC_RELAXED);
}

/* Reset every pair of a worker, and those queued to it: no report. */
static void worker_reset_all(struct worker *w) {
  while (w->head) pair_finish(w, w->head, SPLICE_END_ABORTED, 0, true, false);
  struct pair *p = w->adopt_head;
  w->adopt_head = w->adopt_tail = NULL;
  while (p) {
    struct pair *next = p->queued_next;
    p->registered = false;
    p->prev = p->next = NULL;
    pair_finish(w, p, SPLICE_END_ABORTED, 0, true, false);
    p = next;
  }
  struct command *c = w->abort_head;
  w->abort_head = w->abort_tail = NULL;
  while (c) {
    struct command *next = c->next;
    free(c);
    c = next;
  }
  free_graveyard(w);
}

void splice_plane_destroy(splice_plane *plane, bool loop_alive) {
  if (plane == NULL) return;
  plane_stop_threads(plane);
  for (uint32_t i = 0; i < plane->nworkers; i++) worker_reset_all(&plane->workers[i]);
  /* The loop worker's pairs are touched only on the loop's thread: from another (an exit() elsewhere) they are left, and so is the plane. */
  if (!loop_alive && !pthread_equal(plane->loop_thread, pthread_self())) return;
  worker_reset_all(&plane->loop);
  for (uint32_t j = 0; j < plane->pooled; j++) {
    close(plane->pool[j].r);
    close(plane->pool[j].w);
  }
  plane->pooled = 0;
  /* At exit the loop runs no more: its handles are left as they are, and the memory to the exit. */
  if (!loop_alive) return;
  loop_close(plane);
  plane_free(plane);
}
