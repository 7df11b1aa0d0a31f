/*
 * The native UDP fast path of a DNS server: a thread of its own, or a poll
 * handle of the event loop, reads a bound UDP socket in batches (recvmmsg), answers every query whose bytes after the
 * ID are exactly those of an entry of a bounded table by copying the
 * entry's reply, writing the query's ID and ageing the TTLs, and sends the
 * answers in batches (sendmmsg). Every other datagram (a miss, a client the
 * allow list does not name, an expired entry) goes to the owner's `on_miss`
 * in batches, unchanged. The table is filled and emptied by the owner.
 */
#ifndef SRVLINK_UDP_PLANE_H
#define SRVLINK_UDP_PLANE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Datagrams read or sent per system call. */
#define UDP_BATCH 64
/* Bytes of a datagram read; a longer one is dropped and counted (a DNS query is never that long). */
#define UDP_DATAGRAM_MAX 4096
/* Bytes of a reply the table keeps (UDP replies are cut to at most 4,096 bytes). */
#define UDP_REPLY_MAX 4096
/* TTLs per reply the table ages. */
#define UDP_TTLS_MAX 256

typedef struct udp_plane udp_plane;

/* One datagram for the owner: its bytes and who sent it. */
typedef struct {
  const uint8_t *data;
  size_t length;
  struct sockaddr_storage from;
  socklen_t from_length;
} udp_datagram;

/* On the thread or the loop that reads: `count` datagrams nobody answered; the owner copies what it keeps. */
typedef void (*udp_miss_fn)(void *ctx, const udp_datagram *datagrams, size_t count);

/* A network a client may be in to be answered from the table: family AF_INET or AF_INET6, address in network order. */
typedef struct {
  int family;
  uint8_t address[16];
  uint8_t prefix;
} udp_network;

typedef struct {
  uint64_t hits;
  uint64_t misses;
  /* Datagrams longer than UDP_DATAGRAM_MAX, and misses the owner could not take. */
  uint64_t dropped;
  uint64_t entries;
  uint64_t bytes;
} udp_plane_stats;

/*
 * Read a duplicate of `fd` (the plane closes its copy): on a thread of its
 * own when `loop` is NULL, else on that loop's thread (a poll handle: no
 * wake-up of another thread per query, but no answer while the loop is
 * busy). 0 or an errno. The plane's functions are called on the loop's
 * thread then.
 */
int udp_plane_create(int fd, size_t max_entries, size_t max_bytes, udp_miss_fn on_miss, void *ctx, uv_loop_t *loop, udp_plane **out);
/* Stop reading, free the table, close the descriptor (on the loop: the memory once the loop has closed the handle). NULL is fine. */
void udp_plane_destroy(udp_plane *plane);

/*
 * Answer queries whose bytes after the ID are `key` with `reply` (its ID
 * overwritten) for `life_ms` from now. When `age_ms` >= 0 (the reply was
 * stored that long ago), the TTLs at `ttl_offsets` are `ttls` minus the whole
 * seconds of its age (never below 0). Both are kept on CLOCK_MONOTONIC: a
 * step of the wall clock neither ages nor keeps an entry. Replaces an entry of the same
 * key. `id` is the owner's, reported with the hits. 0, EINVAL for a bad
 * shape or ENOSPC when the table is full.
 */
int udp_plane_put(udp_plane *plane, uint32_t id, const uint8_t *key, size_t key_length, const uint8_t *reply, size_t reply_length,
                  const uint32_t *ttl_offsets, const uint32_t *ttls, size_t ttl_count, int64_t age_ms, int64_t life_ms);
/* Forget the entry of `key`, if any. */
void udp_plane_delete(udp_plane *plane, const uint8_t *key, size_t key_length);
void udp_plane_clear(udp_plane *plane);
/* Who may be answered from the table: `count` networks (copied), or everyone when `networks` is NULL. */
int udp_plane_allow(udp_plane *plane, const udp_network *networks, size_t count);
/* Hits per entry since the last call, as (id, count) pairs, at most `max`; the number of pairs. */
size_t udp_plane_take_hits(udp_plane *plane, uint32_t *ids, uint32_t *counts, size_t max);
void udp_plane_stats_read(udp_plane *plane, udp_plane_stats *out);

#endif
