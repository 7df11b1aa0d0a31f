/* See udp-plane.h. */
#define _GNU_SOURCE
#include "udp-plane.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Batches read per call of the loop's poll handle at most: other handles (accepts, timers) get their turn between them. */
#define LOOP_BATCHES 4

typedef struct entry {
  struct entry *next;
  uint32_t hash;
  uint32_t id;
  uint32_t hits;
  uint16_t key_length;
  uint16_t reply_length;
  uint16_t ttl_count;
  int64_t stored_ms;
  int64_t expires_ms;
  /* Seconds of age the reply's TTLs show now (rewritten when a hit finds another). */
  int64_t shown;
  uint32_t *ttl_offsets;
  uint32_t *ttls;
  /* The key, then the reply. */
  uint8_t *key;
  uint8_t *reply;
} entry;

struct udp_plane {
  int fd;
  int wake;
  pthread_t thread;
  bool running;
  /* On the event loop: the poll handle that reads the socket (its data is the plane), instead of the thread. */
  uv_poll_t poll;
  bool on_loop;
  udp_miss_fn on_miss;
  void *ctx;
  pthread_mutex_t lock;
  entry **buckets;
  size_t bucket_count;
  size_t max_entries;
  size_t max_bytes;
  size_t entries;
  size_t bytes;
  /* NULL: everyone may be answered. */
  udp_network *allowed;
  size_t allowed_count;
  bool allow_all;
  udp_plane_stats stats;
  /* Hits of entries removed before they were taken, reported with the next take. */
  uint32_t orphan_ids[1024];
  uint32_t orphan_counts[1024];
  size_t orphans;
  /* Hits since the last take (a take with none is a lock and a compare: an idle server scans nothing). */
  uint64_t untaken;
  /* The thread's buffers. */
  uint8_t in[UDP_BATCH][UDP_DATAGRAM_MAX];
  uint8_t out[UDP_BATCH][UDP_REPLY_MAX];
  struct mmsghdr in_msgs[UDP_BATCH];
  struct iovec in_iov[UDP_BATCH];
  struct sockaddr_storage from[UDP_BATCH];
  struct mmsghdr out_msgs[UDP_BATCH];
  struct iovec out_iov[UDP_BATCH];
  udp_datagram misses[UDP_BATCH];
};

static uint32_t hash_bytes(const uint8_t *data, size_t length) {
  /* FNV-1a: keys are short, and the table is bounded whatever they collide to. */
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < length; i++) {
    h ^= data[i];
    h *= 16777619u;
  }
  return h;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t entry_bytes(const entry *e) { return (size_t)e->key_length + e->reply_length + (size_t)e->ttl_count * 8 + sizeof *e; }

/* Keep the hits of an entry going away (lock held); past the room, they are lost. */
static void orphan_hits(udp_plane *p, const entry *e) {
  if (e->hits == 0 || p->orphans >= sizeof p->orphan_ids / sizeof p->orphan_ids[0]) return;
  p->orphan_ids[p->orphans] = e->id;
  p->orphan_counts[p->orphans] = e->hits;
  p->orphans++;
}

static void free_entry(entry *e) {
  free(e->ttl_offsets);
  free(e->ttls);
  free(e->key);
  free(e);
}

/* Unlink and free the entry of `key` (lock held); whether there was one. */
static bool remove_locked(udp_plane *p, const uint8_t *key, size_t length, uint32_t hash) {
  entry **at = &p->buckets[hash & (p->bucket_count - 1)];
  for (; *at != NULL; at = &(*at)->next) {
    entry *e = *at;
    if (e->hash == hash && e->key_length == length && memcmp(e->key, key, length) == 0) {
      *at = e->next;
      orphan_hits(p, e);
      p->entries--;
      p->bytes -= entry_bytes(e);
      free_entry(e);
      return true;
    }
  }
  return false;
}

static entry *find_locked(udp_plane *p, const uint8_t *key, size_t length) {
  uint32_t hash = hash_bytes(key, length);
  for (entry *e = p->buckets[hash & (p->bucket_count - 1)]; e != NULL; e = e->next) {
    if (e->hash == hash && e->key_length == length && memcmp(e->key, key, length) == 0) return e;
  }
  return NULL;
}

static bool in_network(const udp_network *n, const uint8_t *address) {
  size_t whole = n->prefix / 8;
  if (memcmp(n->address, address, whole) != 0) return false;
  unsigned rest = n->prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (n->address[whole] & mask) == (address[whole] & mask);
}

/* Whether the sender of a datagram may be answered from the table (lock held). An IPv4 client on an IPv6 socket is its IPv4 address. */
static bool allowed_locked(const udp_plane *p, const struct sockaddr_storage *from) {
  if (p->allow_all) return true;
  int family;
  const uint8_t *address;
  if (from->ss_family == AF_INET) {
    family = AF_INET;
    address = (const uint8_t *)&((const struct sockaddr_in *)from)->sin_addr;
  } else if (from->ss_family == AF_INET6) {
    const uint8_t *v6 = (const uint8_t *)&((const struct sockaddr_in6 *)from)->sin6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(v6, mapped, 12) == 0) {
      family = AF_INET;
      address = v6 + 12;
    } else {
      family = AF_INET6;
      address = v6;
    }
  } else {
    return false;
  }
  for (size_t i = 0; i < p->allowed_count; i++) {
    if (p->allowed[i].family == family && in_network(&p->allowed[i], address)) return true;
  }
  return false;
}

/* The reply to one datagram into `out`, or 0 (lock held). */
static size_t answer_locked(udp_plane *p, const uint8_t *query, size_t length, const struct sockaddr_storage *from, int64_t now, uint8_t *out) {
  /* A header (12) and the shortest question (5). */
  if (length < 17) return 0;
  entry *e = find_locked(p, query + 2, length - 2);
  if (e == NULL || now >= e->expires_ms || !allowed_locked(p, from)) return 0;
  if (e->stored_ms >= 0) {
    int64_t elapsed = now > e->stored_ms ? (now - e->stored_ms) / 1000 : 0;
    if (elapsed != e->shown) {
      for (uint16_t i = 0; i < e->ttl_count; i++) {
        uint32_t ttl = (int64_t)e->ttls[i] > elapsed ? (uint32_t)(e->ttls[i] - elapsed) : 0;
        uint8_t *at = e->reply + e->ttl_offsets[i];
        at[0] = (uint8_t)(ttl >> 24);
        at[1] = (uint8_t)(ttl >> 16);
        at[2] = (uint8_t)(ttl >> 8);
        at[3] = (uint8_t)ttl;
      }
      e->shown = elapsed;
    }
  }
  memcpy(out, e->reply, e->reply_length);
  out[0] = query[0];
  out[1] = query[1];
  e->hits++;
  return e->reply_length;
}

/*
 * Read the socket until it is empty (or, on the loop, for LOOP_BATCHES
 * batches: accepts and timers get their turn, and the poll handle, level
 * triggered, calls again), answer what the table holds, hand the rest to
 * the owner. True when the socket can never be read again.
 */
static bool drain(udp_plane *p) {
  for (int batch = 0; !p->on_loop || batch < LOOP_BATCHES; batch++) {
    for (size_t i = 0; i < UDP_BATCH; i++) {
      struct msghdr *h = &p->in_msgs[i].msg_hdr;
      memset(h, 0, sizeof *h);
      h->msg_iov = &p->in_iov[i];
      h->msg_iovlen = 1;
      h->msg_name = &p->from[i];
      h->msg_namelen = sizeof p->from[i];
    }
    int n = recvmmsg(p->fd, p->in_msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      /* Not a socket (or no longer one): nothing will ever be read, stop rather than spin. */
      if (errno == ENOTSOCK || errno == EBADF || errno == EINVAL || errno == EFAULT) return true;
      /* Read on after the error of an earlier send (ECONNREFUSED from a client gone) or an interrupt. */
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOMEM) return false;
      continue;
    }
    if (n == 0) return false;
    size_t replies = 0, misses = 0;
    uint64_t dropped = 0;
    int64_t now = now_ms();
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < n; i++) {
      struct msghdr *h = &p->in_msgs[i].msg_hdr;
      size_t length = p->in_msgs[i].msg_len;
      if ((h->msg_flags & MSG_TRUNC) != 0) {
        dropped++;
        continue;
      }
      size_t size = answer_locked(p, p->in[i], length, &p->from[i], now, p->out[replies]);
      if (size > 0) {
        struct msghdr *o = &p->out_msgs[replies].msg_hdr;
        memset(o, 0, sizeof *o);
        p->out_iov[replies].iov_len = size;
        o->msg_iov = &p->out_iov[replies];
        o->msg_iovlen = 1;
        o->msg_name = &p->from[i];
        o->msg_namelen = h->msg_namelen;
        replies++;
      } else {
        p->misses[misses].data = p->in[i];
        p->misses[misses].length = length;
        memcpy(&p->misses[misses].from, &p->from[i], sizeof p->from[i]);
        p->misses[misses].from_length = h->msg_namelen;
        misses++;
      }
    }
    p->stats.hits += replies;
    p->untaken += replies;
    p->stats.misses += misses;
    p->stats.dropped += dropped;
    pthread_mutex_unlock(&p->lock);
    for (size_t sent = 0; sent < replies;) {
      int m = sendmmsg(p->fd, p->out_msgs + sent, (unsigned)(replies - sent), MSG_DONTWAIT);
      if (m < 0) {
        if (errno == EINTR) continue;
        /* A full send buffer or a client gone (ECONNREFUSED from an earlier reply): that reply is lost as a datagram may be. */
        sent++;
        continue;
      }
      sent += (size_t)m;
    }
    if (misses > 0) p->on_miss(p->ctx, p->misses, misses);
    if (n < UDP_BATCH) return false;
  }
  return false;
}

static void *run(void *arg) {
  udp_plane *p = arg;
  struct pollfd fds[2] = {{.fd = p->fd, .events = POLLIN}, {.fd = p->wake, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0 || (fds[0].revents & POLLNVAL) != 0) break;
    if (drain(p)) break;
  }
  return NULL;
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  udp_plane *p = poll->data;
  /* An error of the poll, or a socket that can never be read again: stop rather than be called at once, forever. */
  if (status < 0 || drain(p)) uv_poll_stop(poll);
}

static void free_plane(udp_plane *p) {
  udp_plane_clear(p);
  pthread_mutex_destroy(&p->lock);
  free(p->buckets);
  free(p->allowed);
  free(p);
}

static void free_on_close(uv_handle_t *handle) { free_plane(handle->data); }

int udp_plane_create(int fd, size_t max_entries, size_t max_bytes, udp_miss_fn on_miss, void *ctx, uv_loop_t *loop, udp_plane **out) {
  if (max_entries == 0 || max_bytes == 0 || max_entries > (1u << 24)) return EINVAL;
  udp_plane *p = calloc(1, sizeof *p);
  if (p == NULL) return ENOMEM;
  p->bucket_count = 16;
  while (p->bucket_count < max_entries * 2) p->bucket_count *= 2;
  p->buckets = calloc(p->bucket_count, sizeof *p->buckets);
  if (p->buckets == NULL) {
    free(p);
    return ENOMEM;
  }
  p->max_entries = max_entries;
  p->max_bytes = max_bytes;
  p->on_miss = on_miss;
  p->ctx = ctx;
  p->allow_all = true;
  pthread_mutex_init(&p->lock, NULL);
  for (size_t i = 0; i < UDP_BATCH; i++) {
    p->in_iov[i].iov_base = p->in[i];
    p->in_iov[i].iov_len = UDP_DATAGRAM_MAX;
    p->out_iov[i].iov_base = p->out[i];
  }
  p->on_loop = loop != NULL;
  p->wake = -1;
  p->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int err = p->fd < 0 ? errno : 0;
  if (err == 0 && p->on_loop) {
    err = -uv_poll_init(loop, &p->poll, p->fd);
    if (err == 0) {
      p->poll.data = p;
      err = -uv_poll_start(&p->poll, UV_READABLE, on_readable);
      if (err != 0) {
        /* Started or not, an initialised handle is closed by the loop: the plane is freed there. */
        close(p->fd);
        uv_close((uv_handle_t *)&p->poll, free_on_close);
        return err;
      }
    }
  } else if (err == 0) {
    p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    err = p->wake < 0 ? errno : pthread_create(&p->thread, NULL, run, p);
  }
  if (err != 0) {
    if (p->fd >= 0) close(p->fd);
    if (p->wake >= 0) close(p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->buckets);
    free(p);
    return err;
  }
  p->running = true;
  *out = p;
  return 0;
}

void udp_plane_destroy(udp_plane *p) {
  if (p == NULL) return;
  if (p->on_loop) {
    /* The handle leaves the loop's epoll set in this call, so the socket can close now; the memory goes once the loop has closed the handle. */
    uv_close((uv_handle_t *)&p->poll, free_on_close);
    close(p->fd);
    return;
  }
  if (p->running) {
    uint64_t one = 1;
    while (write(p->wake, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(p->thread, NULL);
  }
  close(p->fd);
  close(p->wake);
  free_plane(p);
}

int udp_plane_put(udp_plane *p, uint32_t id, const uint8_t *key, size_t key_length, const uint8_t *reply, size_t reply_length,
                  const uint32_t *ttl_offsets, const uint32_t *ttls, size_t ttl_count, int64_t age_ms, int64_t life_ms) {
  /* A query's bytes after its ID (a header and the shortest question: 15), a reply of at least a header. */
  if (key_length < 15 || key_length > UDP_DATAGRAM_MAX - 2 || reply_length < 12 || reply_length > UDP_REPLY_MAX || ttl_count > UDP_TTLS_MAX) return EINVAL;
  for (size_t i = 0; i < ttl_count; i++) {
    if (ttl_offsets[i] < 12 || (size_t)ttl_offsets[i] + 4 > reply_length) return EINVAL;
  }
  entry *e = calloc(1, sizeof *e);
  if (e == NULL) return ENOMEM;
  e->key = malloc(key_length + reply_length);
  e->ttl_offsets = malloc((ttl_count > 0 ? ttl_count : 1) * sizeof *e->ttl_offsets);
  e->ttls = malloc((ttl_count > 0 ? ttl_count : 1) * sizeof *e->ttls);
  if (e->key == NULL || e->ttl_offsets == NULL || e->ttls == NULL) {
    free_entry(e);
    return ENOMEM;
  }
  e->reply = e->key + key_length;
  memcpy(e->key, key, key_length);
  memcpy(e->reply, reply, reply_length);
  if (ttl_count > 0) {
    memcpy(e->ttl_offsets, ttl_offsets, ttl_count * sizeof *ttl_offsets);
    memcpy(e->ttls, ttls, ttl_count * sizeof *ttls);
  }
  e->key_length = (uint16_t)key_length;
  e->reply_length = (uint16_t)reply_length;
  e->ttl_count = (uint16_t)ttl_count;
  e->id = id;
  int64_t now = now_ms();
  e->stored_ms = age_ms >= 0 ? now - age_ms : -1;
  e->expires_ms = life_ms > INT64_MAX - now ? INT64_MAX : now + life_ms;
  /* Not the age any TTL shows: the first hit writes them. */
  e->shown = -1;
  e->hash = hash_bytes(key, key_length);
  pthread_mutex_lock(&p->lock);
  remove_locked(p, key, key_length, e->hash);
  if (p->entries >= p->max_entries || p->bytes + entry_bytes(e) > p->max_bytes) {
    pthread_mutex_unlock(&p->lock);
    free_entry(e);
    return ENOSPC;
  }
  entry **bucket = &p->buckets[e->hash & (p->bucket_count - 1)];
  e->next = *bucket;
  *bucket = e;
  p->entries++;
  p->bytes += entry_bytes(e);
  pthread_mutex_unlock(&p->lock);
  return 0;
}

void udp_plane_delete(udp_plane *p, const uint8_t *key, size_t key_length) {
  uint32_t hash = hash_bytes(key, key_length);
  pthread_mutex_lock(&p->lock);
  remove_locked(p, key, key_length, hash);
  pthread_mutex_unlock(&p->lock);
}

void udp_plane_clear(udp_plane *p) {
  pthread_mutex_lock(&p->lock);
  for (size_t i = 0; i < p->bucket_count; i++) {
    entry *e = p->buckets[i];
    while (e != NULL) {
      entry *next = e->next;
      orphan_hits(p, e);
      free_entry(e);
      e = next;
    }
    p->buckets[i] = NULL;
  }
  p->entries = 0;
  p->bytes = 0;
  pthread_mutex_unlock(&p->lock);
}

int udp_plane_allow(udp_plane *p, const udp_network *networks, size_t count) {
  udp_network *copy = NULL;
  if (networks != NULL && count > 0) {
    copy = malloc(count * sizeof *copy);
    if (copy == NULL) return ENOMEM;
    memcpy(copy, networks, count * sizeof *copy);
  }
  pthread_mutex_lock(&p->lock);
  free(p->allowed);
  p->allowed = copy;
  p->allowed_count = copy == NULL ? 0 : count;
  p->allow_all = networks == NULL;
  pthread_mutex_unlock(&p->lock);
  return 0;
}

size_t udp_plane_take_hits(udp_plane *p, uint32_t *ids, uint32_t *counts, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&p->lock);
  if (p->untaken == 0) {
    pthread_mutex_unlock(&p->lock);
    return 0;
  }
  uint64_t taken = 0;
  size_t kept = 0;
  for (size_t i = 0; i < p->orphans; i++) {
    if (n < max) {
      ids[n] = p->orphan_ids[i];
      counts[n] = p->orphan_counts[i];
      taken += counts[n];
      n++;
    } else {
      p->orphan_ids[kept] = p->orphan_ids[i];
      p->orphan_counts[kept] = p->orphan_counts[i];
      kept++;
    }
  }
  p->orphans = kept;
  for (size_t i = 0; i < p->bucket_count && n < max; i++) {
    for (entry *e = p->buckets[i]; e != NULL && n < max; e = e->next) {
      if (e->hits == 0) continue;
      ids[n] = e->id;
      counts[n] = e->hits;
      taken += e->hits;
      e->hits = 0;
      n++;
    }
  }
  /* A whole scan took every hit there was (or the orphans' room had lost some): none left. */
  p->untaken = n < max && p->orphans == 0 ? 0 : (p->untaken > taken ? p->untaken - taken : 0);
  pthread_mutex_unlock(&p->lock);
  return n;
}

void udp_plane_stats_read(udp_plane *p, udp_plane_stats *out) {
  pthread_mutex_lock(&p->lock);
  *out = p->stats;
  out->entries = p->entries;
  out->bytes = p->bytes;
  pthread_mutex_unlock(&p->lock);
}
