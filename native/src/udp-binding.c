/* See udp-binding.h. */
#define _GNU_SOURCE
#include "udp-binding.h"
#include "napi-helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udp-plane.h"

/* Batches of misses waiting for the JS thread; past it a batch is dropped and counted (the client retries). */
#define MISS_QUEUE_MAX 256

typedef struct {
  udp_plane *plane;
  napi_threadsafe_function on_miss;
  napi_env env;
  bool closed;
  /* Batches the queue had no room for. */
  uint64_t lost;
} udp_binding;

/* One batch of misses, as handed to the JS thread. */
typedef struct {
  size_t count;
  struct {
    size_t offset;
    size_t length;
    char address[INET6_ADDRSTRLEN];
    int port;
  } items[UDP_BATCH];
  uint8_t data[];
} miss_batch;

static volatile bool exiting;
static bool atexit_registered;

static void at_exit(void) { exiting = true; }

static void close_binding(udp_binding *b) {
  if (b->closed) return;
  b->closed = true;
  /* Joins the thread (or stops the loop's reading): no miss is queued after this. */
  udp_plane_destroy(b->plane);
  b->plane = NULL;
  napi_release_threadsafe_function(b->on_miss, napi_tsfn_abort);
}

static void cleanup_hook(void *arg) { close_binding(arg); }

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  udp_binding *b = data;
  if (!b->closed) napi_remove_env_cleanup_hook(env, cleanup_hook, b);
  close_binding(b);
  free(b);
}

/* On the JS thread: a batch of misses to the callback. */
static void call_js(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  miss_batch *batch = data;
  if (env != NULL && callback != NULL) {
    napi_value list, undefined;
    napi_get_undefined(env, &undefined);
    napi_create_array_with_length(env, batch->count * 3, &list);
    for (size_t i = 0; i < batch->count; i++) {
      napi_value buffer, address, port;
      void *copy = NULL;
      napi_create_buffer_copy(env, batch->items[i].length, batch->data + batch->items[i].offset, &copy, &buffer);
      napi_create_string_latin1(env, batch->items[i].address, NAPI_AUTO_LENGTH, &address);
      napi_create_int32(env, batch->items[i].port, &port);
      napi_set_element(env, list, (uint32_t)(i * 3), buffer);
      napi_set_element(env, list, (uint32_t)(i * 3 + 1), address);
      napi_set_element(env, list, (uint32_t)(i * 3 + 2), port);
    }
    napi_call_function(env, undefined, callback, 1, &list, NULL);
  }
  free(batch);
}

/* On the plane's thread, or on the loop. */
static void on_miss(void *ctx, const udp_datagram *datagrams, size_t count) {
  udp_binding *b = ctx;
  if (exiting) return;
  size_t total = 0;
  for (size_t i = 0; i < count; i++) total += datagrams[i].length;
  miss_batch *batch = malloc(sizeof *batch + total);
  if (batch == NULL) {
    b->lost++;
    return;
  }
  batch->count = 0;
  size_t offset = 0;
  for (size_t i = 0; i < count; i++) {
    const udp_datagram *d = &datagrams[i];
    char *address = batch->items[batch->count].address;
    int port;
    if (d->from.ss_family == AF_INET) {
      const struct sockaddr_in *in = (const struct sockaddr_in *)&d->from;
      inet_ntop(AF_INET, &in->sin_addr, address, INET6_ADDRSTRLEN);
      port = ntohs(in->sin_port);
    } else if (d->from.ss_family == AF_INET6) {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&d->from;
      inet_ntop(AF_INET6, &in6->sin6_addr, address, INET6_ADDRSTRLEN);
      port = ntohs(in6->sin6_port);
    } else {
      continue;
    }
    batch->items[batch->count].port = port;
    batch->items[batch->count].offset = offset;
    batch->items[batch->count].length = d->length;
    memcpy(batch->data + offset, d->data, d->length);
    offset += d->length;
    batch->count++;
  }
  if (napi_call_threadsafe_function(b->on_miss, batch, napi_tsfn_nonblocking) != napi_ok) {
    b->lost++;
    free(batch);
  }
}

static udp_binding *binding_arg(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "expected a udp plane handle");
    return NULL;
  }
  return data;
}

/* The plane of an open handle, or NULL (closed: nothing to do). */
static udp_plane *plane_arg(napi_env env, napi_value value) {
  udp_binding *b = binding_arg(env, value);
  return b == NULL || b->closed ? NULL : b->plane;
}

static bool get_int(napi_env env, napi_value value, int64_t *out) { return napi_get_value_int64(env, value, out) == napi_ok; }

static bool get_buffer(napi_env env, napi_value value, const uint8_t **data, size_t *length) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer) return false;
  void *bytes = NULL;
  if (napi_get_buffer_info(env, value, &bytes, length) != napi_ok) return false;
  *data = bytes;
  return true;
}

/* `array` of at most `max` numbers 0..UINT32_MAX into `out`; the count, or -1. */
static long get_u32_array(napi_env env, napi_value array, uint32_t *out, size_t max) {
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array || napi_get_array_length(env, array, &n) != napi_ok || n > max) return -1;
  for (uint32_t i = 0; i < n; i++) {
    napi_value element;
    int64_t v = 0;
    if (napi_get_element(env, array, i, &element) != napi_ok || !get_int(env, element, &v) || v < 0 || v > UINT32_MAX) return -1;
    out[i] = (uint32_t)v;
  }
  return (long)n;
}

static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t fd = -1, max_entries = 0, max_bytes = 0;
  napi_valuetype type = napi_undefined;
  bool on_loop = false;
  if (argc < 4 || !get_int(env, argv[0], &fd) || !get_int(env, argv[1], &max_entries) || !get_int(env, argv[2], &max_bytes) || fd < 0 ||
      fd > INT32_MAX || max_entries < 1 || max_entries > (1 << 24) || max_bytes < 1 || napi_typeof(env, argv[3], &type) != napi_ok ||
      type != napi_function || (argc >= 5 && napi_get_value_bool(env, argv[4], &on_loop) != napi_ok)) {
    napi_throw_type_error(env, NULL, "udpOpen expects a descriptor, entries and bytes at most, a callback and whether to read on the event loop");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  if (on_loop && (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL)) {
    napi_throw_error(env, NULL, "cannot start the native udp path: no event loop");
    return NULL;
  }
  udp_binding *b = calloc(1, sizeof *b);
  if (b == NULL) return throw_errno(env, "start the native udp path", ENOMEM);
  napi_value name;
  napi_create_string_utf8(env, "srvlink udp plane", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[3], NULL, name, MISS_QUEUE_MAX, 1, NULL, NULL, b, call_js, &b->on_miss) != napi_ok) {
    free(b);
    napi_throw_error(env, NULL, "cannot start the native udp path: no thread-safe function");
    return NULL;
  }
  int err = udp_plane_create((int)fd, (size_t)max_entries, (size_t)max_bytes, on_miss, b, loop, &b->plane);
  if (err != 0) {
    napi_release_threadsafe_function(b->on_miss, napi_tsfn_abort);
    free(b);
    return throw_errno(env, "start the native udp path", err);
  }
  if (!atexit_registered) atexit_registered = atexit(at_exit) == 0;
  b->env = env;
  napi_add_env_cleanup_hook(env, cleanup_hook, b);
  napi_value handle;
  if (napi_create_external(env, b, finalize, NULL, &handle) != napi_ok) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, b);
    close_binding(b);
    free(b);
    napi_throw_error(env, NULL, "cannot start the native udp path: no handle");
    return NULL;
  }
  return handle;
}

static napi_value udp_put(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "udpPut expects a handle, id, key, reply, TTL offsets, TTLs, age and lifetime");
    return NULL;
  }
  udp_binding *b = binding_arg(env, argv[0]);
  if (b == NULL) return NULL;
  int64_t id = 0, age = -1, life = 0;
  const uint8_t *key = NULL, *reply = NULL;
  size_t key_length = 0, reply_length = 0;
  uint32_t offsets[UDP_TTLS_MAX], ttls[UDP_TTLS_MAX];
  long n_offsets = -1, n_ttls = -1;
  if (!get_int(env, argv[1], &id) || id < 0 || id > UINT32_MAX || !get_buffer(env, argv[2], &key, &key_length) ||
      !get_buffer(env, argv[3], &reply, &reply_length) || (n_offsets = get_u32_array(env, argv[4], offsets, UDP_TTLS_MAX)) < 0 ||
      (n_ttls = get_u32_array(env, argv[5], ttls, UDP_TTLS_MAX)) < 0 || n_offsets != n_ttls || !get_int(env, argv[6], &age) ||
      !get_int(env, argv[7], &life)) {
    napi_throw_type_error(env, NULL, "udpPut expects a handle, id, key, reply, TTL offsets, TTLs, age and lifetime");
    return NULL;
  }
  napi_value result;
  bool kept = !b->closed && udp_plane_put(b->plane, (uint32_t)id, key, key_length, reply, reply_length, offsets, ttls, (size_t)n_ttls,
                                          age, life) == 0;
  napi_get_boolean(env, kept, &result);
  return result;
}

static napi_value udp_delete(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  const uint8_t *key = NULL;
  size_t length = 0;
  if (argc < 2 || !get_buffer(env, argv[1], &key, &length)) {
    napi_throw_type_error(env, NULL, "udpDelete expects a handle and a key");
    return NULL;
  }
  udp_plane *plane = plane_arg(env, argv[0]);
  if (plane != NULL) udp_plane_delete(plane, key, length);
  return NULL;
}

static napi_value udp_clear(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  udp_plane *plane = plane_arg(env, argv[0]);
  if (plane != NULL) udp_plane_clear(plane);
  return NULL;
}

static napi_value udp_allow(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type = napi_undefined;
  const uint8_t *data = NULL;
  size_t length = 0;
  if (argc < 2 || napi_typeof(env, argv[1], &type) != napi_ok || (type != napi_null && (!get_buffer(env, argv[1], &data, &length) || length % 18 != 0))) {
    napi_throw_type_error(env, NULL, "udpAllow expects a handle and networks (18 bytes each) or null");
    return NULL;
  }
  udp_plane *plane = plane_arg(env, argv[0]);
  if (plane == NULL) return NULL;
  if (type == napi_null) {
    udp_plane_allow(plane, NULL, 0);
    return NULL;
  }
  size_t count = length / 18;
  udp_network *networks = calloc(count > 0 ? count : 1, sizeof *networks);
  if (networks == NULL) return throw_errno(env, "set the udp allow list", ENOMEM);
  for (size_t i = 0; i < count; i++) {
    const uint8_t *r = data + i * 18;
    int family = r[0] == 4 ? AF_INET : r[0] == 6 ? AF_INET6 : -1;
    unsigned max = r[0] == 4 ? 32 : 128;
    if (family < 0 || r[1] > max) {
      free(networks);
      napi_throw_type_error(env, NULL, "udpAllow: a network has a bad family or prefix");
      return NULL;
    }
    networks[i].family = family;
    networks[i].prefix = r[1];
    memcpy(networks[i].address, r + 2, 16);
  }
  /* An empty list answers nobody from the table: every client goes to the chain. */
  int err = udp_plane_allow(plane, networks, count);
  free(networks);
  if (err != 0) return throw_errno(env, "set the udp allow list", err);
  return NULL;
}

static napi_value udp_take_hits(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  udp_plane *plane = plane_arg(env, argv[0]);
  /* On the stack: every environment (a worker thread) takes its own. */
  uint32_t ids[4096], counts[4096];
  size_t n = 0;
  napi_value result;
  napi_create_array(env, &result);
  uint32_t at = 0;
  do {
    n = plane == NULL ? 0 : udp_plane_take_hits(plane, ids, counts, sizeof ids / sizeof ids[0]);
    for (size_t i = 0; i < n; i++) {
      napi_value id, count;
      napi_create_uint32(env, ids[i], &id);
      napi_create_uint32(env, counts[i], &count);
      napi_set_element(env, result, at++, id);
      napi_set_element(env, result, at++, count);
    }
  } while (n == sizeof ids / sizeof ids[0]);
  return result;
}

static napi_value udp_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  udp_binding *b = binding_arg(env, argv[0]);
  if (b == NULL) return NULL;
  udp_plane_stats stats = {0};
  if (!b->closed) udp_plane_stats_read(b->plane, &stats);
  napi_value result;
  napi_create_object(env, &result);
  set_number(env, result, "hits", (double)stats.hits);
  set_number(env, result, "misses", (double)stats.misses);
  set_number(env, result, "dropped", (double)(stats.dropped + b->lost));
  set_number(env, result, "entries", (double)stats.entries);
  set_number(env, result, "bytes", (double)stats.bytes);
  return result;
}

static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  udp_binding *b = binding_arg(env, argv[0]);
  if (b == NULL || b->closed) return NULL;
  napi_remove_env_cleanup_hook(env, cleanup_hook, b);
  close_binding(b);
  return NULL;
}

napi_status udp_binding_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpPut", NULL, udp_put, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpDelete", NULL, udp_delete, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpClear", NULL, udp_clear, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpAllow", NULL, udp_allow, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpTakeHits", NULL, udp_take_hits, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpStats", NULL, udp_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpClose", NULL, udp_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
