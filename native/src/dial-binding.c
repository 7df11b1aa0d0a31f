/* See dial-binding.h. */
#define _GNU_SOURCE
#include "dial-binding.h"
#include "napi-helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dial-plane.h"

struct binding {
  napi_env env;
  dial_plane *plane;
  napi_ref on_end;
  napi_async_context async;
};

/* The instance data of an environment is the splice plane's: the dials of each environment (the main thread, workers) are listed here. All on the JS threads, each touching its own slot; the list under a lock. */
#define ENVS_MAX 16
static pthread_mutex_t bindings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct binding *bindings[ENVS_MAX];

static struct binding *binding_of(napi_env env) {
  struct binding *found = NULL;
  pthread_mutex_lock(&bindings_lock);
  for (size_t i = 0; i < ENVS_MAX && found == NULL; i++) {
    if (bindings[i] != NULL && bindings[i]->env == env) found = bindings[i];
  }
  pthread_mutex_unlock(&bindings_lock);
  return found;
}

/* Listed, or false when ENVS_MAX environments have dials already. */
static bool list_binding(struct binding *b) {
  bool listed = false;
  pthread_mutex_lock(&bindings_lock);
  for (size_t i = 0; i < ENVS_MAX && !listed; i++) {
    if (bindings[i] == NULL) {
      bindings[i] = b;
      listed = true;
    }
  }
  pthread_mutex_unlock(&bindings_lock);
  return listed;
}

static void unlist_binding(struct binding *b) {
  pthread_mutex_lock(&bindings_lock);
  for (size_t i = 0; i < ENVS_MAX; i++) {
    if (bindings[i] == b) bindings[i] = NULL;
  }
  pthread_mutex_unlock(&bindings_lock);
}

/*
 * From a callback of the loop: the ends of `count` dials, one call of the
 * JS callback each, all within one callback scope (microtasks run after
 * the last, as after any I/O callback). A socket nobody could be told of
 * is closed.
 */
static void on_report(void *ctx, const dial_report *reports, size_t count) {
  struct binding *b = ctx;
  napi_env env = b->env;
  napi_handle_scope scope;
  napi_value callback = NULL, recv;
  napi_callback_scope callback_scope;
  size_t told = 0;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    for (size_t i = 0; i < count; i++) {
      if (reports[i].fd >= 0) close(reports[i].fd);
    }
    return;
  }
  if (napi_get_reference_value(env, b->on_end, &callback) == napi_ok && callback != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_open_callback_scope(env, recv, b->async, &callback_scope) == napi_ok) {
    for (; told < count; told++) {
      const dial_report *r = &reports[told];
      napi_value argv[3];
      napi_create_double(env, (double)r->id, &argv[0]);
      napi_create_int32(env, r->fd, &argv[1]);
      napi_create_int32(env, r->error, &argv[2]);
      if (napi_call_function(env, recv, callback, 3, argv, NULL) == napi_pending_exception) {
        /* A bug in the callback: to the process, as an uncaught exception. */
        napi_value error;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
      }
    }
    napi_close_callback_scope(env, callback_scope);
  }
  for (size_t i = told; i < count; i++) {
    if (reports[i].fd >= 0) close(reports[i].fd);
  }
  napi_close_handle_scope(env, scope);
}

static void cleanup_hook(void *arg) {
  struct binding *b = arg;
  dial_plane_destroy(b->plane);
  b->plane = NULL;
  if (b->async) napi_async_destroy(b->env, b->async);
  if (b->on_end) napi_delete_reference(b->env, b->on_end);
  unlist_binding(b);
  free(b);
}

static napi_value dial_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "dialStart expects a callback");
    return NULL;
  }
  if (binding_of(env) != NULL) {
    napi_throw_error(env, "ERR_STARTED", "native dials are started already");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) {
    napi_throw_error(env, NULL, "cannot start native dials: no event loop");
    return NULL;
  }
  struct binding *b = calloc(1, sizeof *b);
  if (b == NULL) return throw_errno(env, "start native dials", ENOMEM);
  b->env = env;
  napi_value name;
  napi_create_string_utf8(env, "srvlink dial", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[0], 1, &b->on_end) != napi_ok || napi_async_init(env, NULL, name, &b->async) != napi_ok) {
    if (b->on_end) napi_delete_reference(env, b->on_end);
    free(b);
    napi_throw_error(env, NULL, "cannot start native dials");
    return NULL;
  }
  int err = dial_plane_create(loop, on_report, b, &b->plane);
  if (err != 0) {
    napi_async_destroy(env, b->async);
    napi_delete_reference(env, b->on_end);
    free(b);
    return throw_errno(env, "start native dials", err);
  }
  if (!list_binding(b)) {
    dial_plane_destroy(b->plane);
    napi_async_destroy(env, b->async);
    napi_delete_reference(env, b->on_end);
    free(b);
    napi_throw_error(env, NULL, "cannot start native dials: too many environments");
    return NULL;
  }
  napi_add_env_cleanup_hook(env, cleanup_hook, b);
  return NULL;
}

static napi_value dial_connect(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char host[64];
  size_t hostlen = 0;
  int64_t port = 0, timeout = 0;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hostlen) != napi_ok ||
      napi_get_value_int64(env, argv[1], &port) != napi_ok || napi_get_value_int64(env, argv[2], &timeout) != napi_ok || port < 1 ||
      port > 65535 || timeout < 1 || timeout > UINT32_MAX) {
    napi_throw_type_error(env, NULL, "dialConnect expects an IP address, a port and a timeout in ms");
    return NULL;
  }
  struct sockaddr_storage addr;
  socklen_t len;
  if (!socket_address(host, (uint16_t)port, &addr, &len)) {
    napi_throw_type_error(env, "ERR_NOT_IP", "dialConnect expects an IP address");
    return NULL;
  }
  struct binding *b = binding_of(env);
  if (b == NULL || b->plane == NULL) {
    napi_throw_error(env, "ERR_NOT_STARTED", "native dials are not started");
    return NULL;
  }
  uint64_t id = 0;
  int err = dial_plane_connect(b->plane, (struct sockaddr *)&addr, len, (uint32_t)timeout, &id);
  if (err != 0) return throw_errno(env, "dial", err);
  napi_value result;
  napi_create_double(env, (double)id, &result);
  return result;
}

static napi_value dial_abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t id = 0;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &id) != napi_ok || id <= 0) {
    napi_throw_type_error(env, NULL, "dialAbort expects a dial id");
    return NULL;
  }
  struct binding *b = binding_of(env);
  if (b != NULL && b->plane != NULL) dial_plane_abort(b->plane, (uint64_t)id);
  return NULL;
}

napi_status dial_binding_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"dialStart", NULL, dial_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dialConnect", NULL, dial_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dialAbort", NULL, dial_abort, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
