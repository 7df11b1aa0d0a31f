/* See splice-plane.h. Linux only: splice(2), epoll(7), eventfd(2), F_SETPIPE_SZ. */
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
/* The copy fallback's buffer, one per thread. */
#define COPY_SIZE (64u << 10)

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
  /* EPOLLERR or EPOLLHUP seen: read SO_ERROR before pumping. */
  bool check_error[2];
  uint32_t idle_ms;
  int64_t last_active;
  bool registered;
  /* Finished: its sockets are closed, it waits on the graveyard to be freed after the batch. */
  bool dead;
  /* In worker->ready: it hit the per-pump limit with bytes left to move. */
  bool in_ready;
  uint64_t batch;
  struct pair *prev, *next;
};

enum command_kind { COMMAND_ADD, COMMAND_ABORT };

struct command {
  enum command_kind kind;
  uint64_t id;
  struct pair *pair;
  struct command *next;
};

/* One thread of the plane and the pairs it moves. */
struct worker {
  splice_plane *plane;
  int epfd;
  int wakefd;
  pthread_t thread;
  bool thread_started;

  /* Under plane->lock. */
  struct command *queue_head, *queue_tail;

  /* The thread's own. */
  struct pair *head;
  struct pair *graveyard;
  struct pair **ready, **pending;
  size_t nready, ready_cap;
  int64_t next_idle_check; /* INT64_MAX: no pair with an idle timeout */
  char *copy;
};

struct splice_plane {
  splice_report_fn report;
  void *ctx;
  uint32_t nworkers;
  struct worker workers[SPLICE_THREADS_MAX];

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

/* --- the threads ----------------------------------------------------------- */

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

/* Unlink, close both sockets (reset or plainly), give the pipes back, report. */
static void pair_finish(struct worker *w, struct pair *p, int end, int error, bool reset, bool report) {
  splice_plane *plane = w->plane;
  for (int side = 0; side < 2; side++) {
    if (p->registered) epoll_ctl(w->epfd, EPOLL_CTL_DEL, p->fd[side], NULL);
    if (reset) reset_close(p->fd[side]);
    else close(p->fd[side]);
  }
  if (p->prev) p->prev->next = p->next;
  else if (w->head == p) w->head = p->next;
  if (p->next) p->next->prev = p->prev;
  splice_report r = {.id = p->id, .bytes_in = p->dir[0].bytes, .bytes_out = p->dir[1].bytes, .end = end, .error = error};
  for (int d = 0; d < 2; d++) pipe_give(plane, &p->dir[d].pipe, p->dir[d].in_pipe == 0);
  pthread_mutex_lock(&plane->lock);
  plane->pairs--;
  pthread_mutex_unlock(&plane->lock);
  p->dead = true;
  p->next = w->graveyard;
  w->graveyard = p;
  if (report) plane->report(plane->ctx, &r);
}

static void free_graveyard(struct worker *w) {
  while (w->graveyard) {
    struct pair *next = w->graveyard->next;
    free(w->graveyard);
    w->graveyard = next;
  }
}

/* Pumped again on the next turn of the loop, without waiting for an event. */
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

static void pair_fail(struct worker *w, struct pair *p, int side, int error) {
  pair_finish(w, p, side == 0 ? SPLICE_END_CLIENT_ERROR : SPLICE_END_BACKEND_ERROR, error, true, true);
}

/* What one step of a direction did. */
enum step { STEP_NONE, STEP_MOVED, STEP_RETRY, STEP_GONE };

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
  if (n == 0) {
    x->eof = true;
    return STEP_MOVED;
  }
  if (n < 0) {
    if (errno == EAGAIN) {
      p->readable[d] = false;
      return STEP_NONE;
    }
    if (errno == EINTR) return STEP_RETRY;
    pair_fail(w, p, d, errno);
    return STEP_GONE;
  }
  ssize_t sent = send(dst, w->copy, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno == EAGAIN) {
      p->writable[1 - d] = false;
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
 * Move what can be moved, both ways. Returns false when the pair is gone
 * (finished or failed). splice's EAGAIN means "socket empty" or "pipe
 * full" (slots, not bytes: a pipe can be full below its size), so the
 * source is taken as drained only when the pipe was empty; otherwise the
 * pipe is emptied first and the read tried again. With edge-triggered
 * epoll, that is the only safe place to wait for the source. A pipe empty
 * at the end goes back to the pool, so an idle pair holds none.
 */
static bool pair_pump(struct worker *w, struct pair *p) {
  bool moved_any = false;
  for (int d = 0; d < 2; d++) {
    struct direction *x = &p->dir[d];
    int src = p->fd[d], dst = p->fd[1 - d];
    for (int round = 0;; round++) {
      if (round == PUMP_ROUNDS) {
        mark_ready(w, p);
        break;
      }
      bool moved = false;
      if (x->in_pipe > 0 && p->writable[1 - d]) {
        ssize_t n = splice(x->pipe.r, NULL, dst, NULL, x->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          x->in_pipe -= (size_t)n;
          moved = true;
        } else if (n < 0 && errno == EAGAIN) {
          p->writable[1 - d] = false;
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
      if (shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) {
        pair_fail(w, p, 1 - d, errno);
        return false;
      }
      x->shut = true;
    }
  }
  if (moved_any) p->last_active = now_ms();
  if (p->dir[0].shut && p->dir[1].shut) {
    pair_finish(w, p, SPLICE_END_CLOSED, 0, false, true);
    return false;
  }
  return true;
}

static void pair_start(struct worker *w, struct pair *p) {
  p->next = w->head;
  if (w->head) w->head->prev = p;
  w->head = p;
  p->last_active = now_ms();
  for (int side = 0; side < 2; side++) {
    p->ep[side].pair = p;
    p->ep[side].side = side;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = &p->ep[side]};
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
  pair_pump(w, p);
}

static void run_commands(struct worker *w) {
  uint64_t count;
  while (read(w->wakefd, &count, sizeof count) > 0) {
  }
  pthread_mutex_lock(&w->plane->lock);
  struct command *c = w->queue_head;
  w->queue_head = w->queue_tail = NULL;
  pthread_mutex_unlock(&w->plane->lock);
  while (c) {
    struct command *next = c->next;
    if (c->kind == COMMAND_ADD) {
      pair_start(w, c->pair);
    } else {
      for (struct pair *p = w->head; p; p = p->next) {
        if (p->id == c->id) {
          pair_finish(w, p, SPLICE_END_ABORTED, 0, true, true);
          break;
        }
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
 */
static void *worker_main(void *arg) {
  struct worker *w = arg;
  splice_plane *plane = w->plane;
  struct epoll_event events[EVENTS_MAX];
  struct pair *dirty[EVENTS_MAX];
  uint64_t batch = 0;
  for (;;) {
    int timeout = -1;
    if (w->nready > 0) {
      timeout = 0;
    } else if (w->next_idle_check != INT64_MAX) {
      int64_t wait = w->next_idle_check - now_ms();
      timeout = wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
    }
    int n = epoll_wait(w->epfd, events, EVENTS_MAX, timeout);
    if (n < 0 && errno != EINTR) break;
    batch++;
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
      if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) p->writable[ep->side] = true;
      if (e & (EPOLLERR | EPOLLHUP)) p->check_error[ep->side] = true;
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
      if (!gone) pair_pump(w, p);
    }
    for (size_t i = 0; i < npending; i++) {
      struct pair *p = pending[i];
      if (!p->dead && p->batch != batch) pair_pump(w, p);
    }
    if (commands) run_commands(w);
    int64_t now = now_ms();
    if (w->next_idle_check <= now) check_idle(w, now);
    free_graveyard(w);
    pthread_mutex_lock(&plane->lock);
    bool stop = plane->stop;
    pthread_mutex_unlock(&plane->lock);
    if (stop) break;
  }
  return NULL;
}

/* --- the callers' side ------------------------------------------------- */

static void worker_close(struct worker *w) {
  if (w->epfd >= 0) close(w->epfd);
  if (w->wakefd >= 0) close(w->wakefd);
  free(w->copy);
  free(w->ready);
  free(w->pending);
}

static int worker_open(splice_plane *plane, struct worker *w) {
  w->plane = plane;
  w->next_idle_check = INT64_MAX;
  w->epfd = epoll_create1(EPOLL_CLOEXEC);
  w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  w->copy = malloc(COPY_SIZE);
  if (w->epfd < 0 || w->wakefd < 0) return errno;
  if (w->copy == NULL) return ENOMEM;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) != 0) return errno;
  return 0;
}

static void plane_stop_threads(splice_plane *plane) {
  pthread_mutex_lock(&plane->lock);
  plane->stop = true;
  pthread_mutex_unlock(&plane->lock);
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
  pthread_mutex_destroy(&plane->lock);
  free(plane);
}

int splice_plane_create(splice_report_fn report, void *ctx, uint32_t threads, uint32_t pipes_max, splice_plane **out) {
  splice_plane *plane = calloc(1, sizeof *plane);
  if (plane == NULL) return ENOMEM;
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
  plane->pipes_max = pipes_max > 0 ? pipes_max : SPLICE_PIPES_DEFAULT;
  plane->pipe_budget = read_pipe_budget();
  int err = pthread_mutex_init(&plane->lock, NULL);
  if (err != 0) {
    free(plane);
    return err;
  }
  for (uint32_t i = 0; i < threads; i++) plane->workers[i].epfd = plane->workers[i].wakefd = -1;
  plane->nworkers = threads;
  for (uint32_t i = 0; i < threads && err == 0; i++) err = worker_open(plane, &plane->workers[i]);
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
  if (err != 0) {
    plane_stop_threads(plane);
    plane_free(plane);
    return err;
  }
  *out = plane;
  return 0;
}

int splice_plane_add(splice_plane *plane, int client_fd, int backend_fd, uint32_t idle_ms, uint64_t *id) {
  struct pair *p = calloc(1, sizeof *p);
  struct command *c = calloc(1, sizeof *c);
  if (p == NULL || c == NULL) {
    free(p);
    free(c);
    return ENOMEM;
  }
  p->fd[0] = client_fd;
  p->fd[1] = backend_fd;
  p->idle_ms = idle_ms;
  p->dir[0].pipe.r = p->dir[0].pipe.w = p->dir[1].pipe.r = p->dir[1].pipe.w = -1;
  for (int side = 0; side < 2; side++) {
    int flags = fcntl(p->fd[side], F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(p->fd[side], F_SETFL, flags | O_NONBLOCK);
  }
  pthread_mutex_lock(&plane->lock);
  if (plane->stop) {
    pthread_mutex_unlock(&plane->lock);
    free(p);
    free(c);
    return ESHUTDOWN;
  }
  p->id = plane->next_id++;
  plane->pairs++;
  /* Spread over the threads by id, so that an abort finds its pair's thread from the id alone. */
  struct worker *w = &plane->workers[p->id % plane->nworkers];
  p->worker = w;
  c->kind = COMMAND_ADD;
  c->pair = p;
  if (w->queue_tail) w->queue_tail->next = c;
  else w->queue_head = c;
  w->queue_tail = c;
  pthread_mutex_unlock(&plane->lock);
  *id = p->id;
  wake(w);
  return 0;
}

void splice_plane_abort(splice_plane *plane, uint64_t id) {
  struct command *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  c->kind = COMMAND_ABORT;
  c->id = id;
  struct worker *w = &plane->workers[id % plane->nworkers];
  pthread_mutex_lock(&plane->lock);
  if (w->queue_tail) w->queue_tail->next = c;
  else w->queue_head = c;
  w->queue_tail = c;
  pthread_mutex_unlock(&plane->lock);
  wake(w);
}

void splice_plane_stats_read(splice_plane *plane, splice_plane_stats *out) {
  pthread_mutex_lock(&plane->lock);
  out->pairs = plane->pairs;
  out->pipes_open = plane->pipes_open;
  out->pipes_max = plane->pipes_max;
  out->threads = plane->nworkers;
  out->pipe_bytes = plane->pipe_bytes;
  out->pipe_budget = plane->pipe_budget;
  out->pooled_pipes = plane->pooled;
  pthread_mutex_unlock(&plane->lock);
  out->copied_bytes = __atomic_load_n(&plane->copied, __ATOMIC_RELAXED);
}

void splice_plane_destroy(splice_plane *plane) {
  if (plane == NULL) return;
  plane_stop_threads(plane);
  for (uint32_t i = 0; i < plane->nworkers; i++) {
    struct worker *w = &plane->workers[i];
    /* Pairs still forwarding, and pairs added but never started: the streams are cut, so both peers are reset. */
    while (w->head) pair_finish(w, w->head, SPLICE_END_ABORTED, 0, true, false);
    free_graveyard(w);
    struct command *c = w->queue_head;
    while (c) {
      struct command *next = c->next;
      if (c->kind == COMMAND_ADD) {
        c->pair->registered = false;
        c->pair->prev = c->pair->next = NULL;
        w->head = c->pair;
        pair_finish(w, c->pair, SPLICE_END_ABORTED, 0, true, false);
        free_graveyard(w);
      }
      free(c);
      c = next;
    }
  }
  for (uint32_t j = 0; j < plane->pooled; j++) {
    close(plane->pool[j].r);
    close(plane->pool[j].w);
  }
  plane_free(plane);
}
