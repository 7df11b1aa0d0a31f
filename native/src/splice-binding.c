/* See splice-binding.h. */
#define _GNU_SOURCE
#include "splice-binding.h"
#include "napi-helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "splice-plane.h"

struct binding {
  napi_env env;
  splice_plane *plane;
  napi_ref on_end;
  napi_async_context async;
};

/* Planes of every environment, so that an exit() without environment teardown still resets the pairs it cuts. */
static pthread_mutex_t planes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct binding *planes[16];
static bool atexit_registered;
/* Set when exit() has begun: pairs are no longer reported to an environment going away. */
static volatile bool exiting;

static void destroy_plane(struct binding *b) {
  pthread_mutex_lock(&planes_lock);
  splice_plane *plane = b->plane;
  b->plane = NULL;
  for (size_t i = 0; i < sizeof planes / sizeof planes[0]; i++) {
    if (planes[i] == b) planes[i] = NULL;
  }
  pthread_mutex_unlock(&planes_lock);
  splice_plane_destroy(plane, true);
}

static void at_exit(void) {
  exiting = true;
  for (size_t i = 0; i < sizeof planes / sizeof planes[0]; i++) {
    pthread_mutex_lock(&planes_lock);
    struct binding *b = planes[i];
    splice_plane *plane = b ? b->plane : NULL;
    if (b) {
      b->plane = NULL;
      planes[i] = NULL;
    }
    pthread_mutex_unlock(&planes_lock);
    splice_plane_destroy(plane, false);
  }
}

static void cleanup_hook(void *arg) {
  struct binding *b = arg;
  destroy_plane(b);
  if (b->async) napi_async_destroy(b->env, b->async);
  if (b->on_end) napi_delete_reference(b->env, b->on_end);
  free(b);
}

static struct binding *binding_of(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok) return NULL;
  return data;
}

/*
 * On the loop, from a callback of it: the ends of `count` pairs, one call
 * of the callback each, all within one callback scope, so that the
 * microtasks and ticks they queue run once, after the last.
 */
static void on_reports(void *ctx, const splice_report *reports, size_t count) {
  struct binding *b = ctx;
  if (exiting) return;
  napi_env env = b->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv;
  napi_callback_scope callback_scope;
  if (napi_get_reference_value(env, b->on_end, &callback) != napi_ok || callback == NULL || napi_get_global(env, &recv) != napi_ok ||
      napi_open_callback_scope(env, recv, b->async, &callback_scope) != napi_ok) {
    napi_close_handle_scope(env, scope);
    return;
  }
  for (size_t i = 0; i < count; i++) {
    const splice_report *r = &reports[i];
    napi_handle_scope inner;
    if (napi_open_handle_scope(env, &inner) != napi_ok) break;
    napi_value argv[5];
    napi_create_double(env, (double)r->id, &argv[0]);
    napi_create_double(env, (double)r->bytes_in, &argv[1]);
    napi_create_double(env, (double)r->bytes_out, &argv[2]);
    napi_create_int32(env, r->end, &argv[3]);
    napi_create_int32(env, r->error, &argv[4]);
    if (napi_call_function(env, recv, callback, 5, argv, NULL) == napi_pending_exception) {
      /* A bug in the callback: to the process, as an uncaught exception; the other ends are still told. */
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
    napi_close_handle_scope(env, inner);
  }
  napi_close_callback_scope(env, callback_scope);
  napi_close_handle_scope(env, scope);
}

/* A whole number option of `options` (an object or undefined), 0 when absent. false: not a whole number in [0, max]. */
static bool get_option(napi_env env, napi_value options, const char *key, uint32_t max, uint32_t *out) {
  *out = 0;
  napi_valuetype type = napi_undefined;
  if (options == NULL || napi_typeof(env, options, &type) != napi_ok || type == napi_undefined) return true;
  if (type != napi_object) return false;
  bool has = false;
  if (napi_has_named_property(env, options, key, &has) != napi_ok) return false;
  if (!has) return true;
  napi_value value;
  double number = 0;
  if (napi_get_named_property(env, options, key, &value) != napi_ok || napi_typeof(env, value, &type) != napi_ok) return false;
  if (type == napi_undefined) return true;
  if (type != napi_number || napi_get_value_double(env, value, &number) != napi_ok) return false;
  if (!(number >= 0 && number <= max) || number != (double)(uint32_t)number) return false;
  *out = (uint32_t)number;
  return true;
}

static napi_value splice_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {NULL, NULL};
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "spliceStart expects a callback");
    return NULL;
  }
  napi_value options = argc > 1 ? argv[1] : NULL;
  uint32_t threads = 0, max_pipes = 0, migrate_bytes = 0, migrate_ms = 0;
  if (!get_option(env, options, "threads", SPLICE_THREADS_MAX, &threads) || !get_option(env, options, "maxPipes", 1u << 20, &max_pipes) ||
      !get_option(env, options, "migrateBytes", UINT32_MAX, &migrate_bytes) || !get_option(env, options, "migrateMs", 3600000, &migrate_ms)) {
    napi_throw_type_error(env, NULL,
                          "spliceStart expects options { threads (0 to 8), maxPipes (0 to 1048576), migrateBytes (0 to 4294967295), migrateMs (0 to 3600000) }");
    return NULL;
  }
  if (binding_of(env) != NULL) {
    napi_throw_error(env, "ERR_STARTED", "the native data plane is started already");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) {
    napi_throw_error(env, NULL, "cannot start the native data plane: no event loop");
    return NULL;
  }
  struct binding *b = calloc(1, sizeof *b);
  if (b == NULL) return throw_errno(env, "start the native data plane", ENOMEM);
  b->env = env;
  napi_value name;
  napi_create_string_utf8(env, "srvlink splice plane", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[0], 1, &b->on_end) != napi_ok || napi_async_init(env, NULL, name, &b->async) != napi_ok) {
    if (b->on_end) napi_delete_reference(env, b->on_end);
    free(b);
    napi_throw_error(env, NULL, "cannot start the native data plane");
    return NULL;
  }
  splice_plane_options opts = {.threads = threads, .pipes_max = max_pipes, .migrate_bytes = migrate_bytes, .migrate_ms = migrate_ms};
  int err = splice_plane_create(loop, on_reports, b, &opts, &b->plane);
  if (err != 0) {
    napi_async_destroy(env, b->async);
    napi_delete_reference(env, b->on_end);
    free(b);
    return throw_errno(env, "start the native data plane", err);
  }
  pthread_mutex_lock(&planes_lock);
  bool listed = false;
  for (size_t i = 0; i < sizeof planes / sizeof planes[0] && !listed; i++) {
    if (planes[i] == NULL) {
      planes[i] = b;
      listed = true;
    }
  }
  if (!atexit_registered) atexit_registered = atexit(at_exit) == 0;
  pthread_mutex_unlock(&planes_lock);
  napi_set_instance_data(env, b, NULL, NULL);
  napi_add_env_cleanup_hook(env, cleanup_hook, b);
  return NULL;
}

static bool get_int(napi_env env, napi_value value, int64_t *out) {
  return napi_get_value_int64(env, value, out) == napi_ok;
}

/* spliceAdd's fourth argument: the descriptors the plane takes as they are (close-on-exec already), not duplicates of them. */
#define OWN_CLIENT 1
#define OWN_BACKEND 2

static napi_value splice_add(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t client = -1, backend = -1, idle = 0, own = 0;
  if (argc < 3 || !get_int(env, argv[0], &client) || !get_int(env, argv[1], &backend) || !get_int(env, argv[2], &idle) || client < 0 ||
      backend < 0 || client > INT32_MAX || backend > INT32_MAX || idle < 0 || idle > UINT32_MAX ||
      (argc > 3 && (!get_int(env, argv[3], &own) || own < 0 || own > (OWN_CLIENT | OWN_BACKEND)))) {
    napi_throw_type_error(env, NULL, "spliceAdd expects two descriptors, an idle timeout in ms and which descriptors it takes (0 to 3)");
    return NULL;
  }
  struct binding *b = binding_of(env);
  if (b == NULL || b->plane == NULL) {
    napi_throw_error(env, "ERR_NOT_STARTED", "the native data plane is not started");
    return NULL;
  }
  /*
   * Our own descriptors, close-on-exec: a plain dup would leak into every
   * child spawned meanwhile (health checks). A descriptor the caller gives
   * (OWN_*) is one no JavaScript handle holds (a native accept's or dial's,
   * close-on-exec already): taken as it is, no dup and close per pair.
   */
  int fds[2] = {(own & OWN_CLIENT) ? (int)client : fcntl((int)client, F_DUPFD_CLOEXEC, 0), -1};
  if (fds[0] >= 0) fds[1] = (own & OWN_BACKEND) ? (int)backend : fcntl((int)backend, F_DUPFD_CLOEXEC, 0);
  if (fds[0] < 0 || fds[1] < 0) {
    int err = errno;
    if (fds[0] >= 0 && !(own & OWN_CLIENT)) close(fds[0]);
    return throw_errno(env, "duplicate a socket", err);
  }
  uint64_t id = 0;
  /* Descriptors of a native accept or dial are non-blocking; a duplicate of a JavaScript socket's shares its flags, checked by the plane. */
  int err = splice_plane_add(b->plane, fds[0], fds[1], (uint32_t)idle, own == (OWN_CLIENT | OWN_BACKEND), &id);
  if (err != 0) {
    /* Given descriptors stay the caller's on failure. */
    if (!(own & OWN_CLIENT)) close(fds[0]);
    if (!(own & OWN_BACKEND)) close(fds[1]);
    return throw_errno(env, "hand a pair to the native data plane", err);
  }
  napi_value result;
  napi_create_double(env, (double)id, &result);
  return result;
}

static napi_value splice_abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t id = 0;
  if (argc < 1 || !get_int(env, argv[0], &id) || id <= 0) {
    napi_throw_type_error(env, NULL, "spliceAbort expects a pair id");
    return NULL;
  }
  struct binding *b = binding_of(env);
  if (b != NULL && b->plane != NULL) splice_plane_abort(b->plane, (uint64_t)id);
  return NULL;
}

static napi_value splice_stats(napi_env env, napi_callback_info info) {
  (void)info;
  struct binding *b = binding_of(env);
  splice_plane_stats stats = {0};
  if (b != NULL && b->plane != NULL) splice_plane_stats_read(b->plane, &stats);
  napi_value result;
  napi_create_object(env, &result);
  set_number(env, result, "pairs", stats.pairs);
  set_number(env, result, "loopPairs", stats.loop_pairs);
  set_number(env, result, "migrated", (double)stats.migrated);
  set_number(env, result, "pooledPipes", stats.pooled_pipes);
  set_number(env, result, "poolMax", SPLICE_POOL_MAX);
  set_number(env, result, "pipesOpen", stats.pipes_open);
  set_number(env, result, "maxPipes", stats.pipes_max);
  set_number(env, result, "threads", stats.threads);
  set_number(env, result, "pipeBytes", (double)stats.pipe_bytes);
  set_number(env, result, "pipeBudget", (double)stats.pipe_budget);
  set_number(env, result, "copiedBytes", (double)stats.copied_bytes);
  return result;
}

napi_status splice_binding_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"spliceStart", NULL, splice_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spliceAdd", NULL, splice_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spliceAbort", NULL, splice_abort, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spliceStats", NULL, splice_stats, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
