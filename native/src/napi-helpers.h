/* Small Node-API helpers shared by the bindings (splice, dial, udp). */
#ifndef SRVLINK_NAPI_HELPERS_H
#define SRVLINK_NAPI_HELPERS_H

#include <node_api.h>
#include <stdio.h>
#include <string.h>

/* Throw "cannot ACTION: strerror(err)" with the code "E<err>"; returns NULL for `return throw_errno(...)`. */
static inline napi_value throw_errno(napi_env env, const char *action, int err) {
  char message[160];
  char code[32];
  snprintf(message, sizeof message, "cannot %s: %s", action, strerror(err));
  snprintf(code, sizeof code, "E%d", err);
  napi_throw_error(env, code, message);
  return NULL;
}

/* object[key] = value, as a JS number. */
static inline void set_number(napi_env env, napi_value object, const char *key, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, object, key, v);
}

#endif
