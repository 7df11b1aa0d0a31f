/*
 * srvlink's native addon (Node-API, plain C). One file per part; this one
 * only registers the exports:
 *   reapZombies(exclude: number[]): number[]   reaper.c
 *   setChildSubreaper(): void                  reaper.c
 *   isChildSubreaper(): boolean                reaper.c
 *   spliceStart, spliceAdd, spliceAbort,
 *   spliceStats                                splice-binding.c (the native data plane)
 *   udpOpen, udpPut, udpDelete, udpClear,
 *   udpAllow, udpTakeHits, udpStats, udpClose  udp-binding.c (the DNS servers' UDP fast path)
 *   dialStart, dialConnect, dialAbort          dial-binding.c (native dials)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "accept-binding.h"
#include "napi-helpers.h"
#include "dial-binding.h"
#include "reaper.h"
#include "splice-binding.h"
#include "udp-binding.h"

#define REAPED_MAX 256

static napi_value reap_zombies(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  bool is_array = false;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, NULL, "reapZombies expects an array of pids");
    return NULL;
  }
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  pid_t *exclude = calloc(n > 0 ? n : 1, sizeof *exclude);
  if (exclude == NULL) return throw_errno(env, "reap zombies", ENOMEM);
  for (uint32_t i = 0; i < n; i++) {
    napi_value element;
    int32_t pid = 0;
    if (napi_get_element(env, argv[0], i, &element) != napi_ok || napi_get_value_int32(env, element, &pid) != napi_ok) {
      free(exclude);
      napi_throw_type_error(env, NULL, "reapZombies expects an array of pids");
      return NULL;
    }
    exclude[i] = (pid_t)pid;
  }
  pid_t reaped[REAPED_MAX];
  long count = reaper_reap(exclude, n, reaped, REAPED_MAX);
  free(exclude);
  if (count < 0) return throw_errno(env, "read /proc", (int)-count);
  size_t shown = count > REAPED_MAX ? REAPED_MAX : (size_t)count;
  napi_value result;
  napi_create_array_with_length(env, shown, &result);
  for (size_t i = 0; i < shown; i++) {
    napi_value pid;
    napi_create_int32(env, reaped[i], &pid);
    napi_set_element(env, result, (uint32_t)i, pid);
  }
  return result;
}

static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  int err = reaper_set_subreaper();
  if (err != 0) return throw_errno(env, "become a child subreaper", err);
  return NULL;
}

static napi_value is_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  int on = reaper_is_subreaper();
  if (on < 0) return throw_errno(env, "read the child subreaper flag", -on);
  napi_value result;
  napi_get_boolean(env, on == 1, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"reapZombies", NULL, reap_zombies, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setChildSubreaper", NULL, set_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL},
      {"isChildSubreaper", NULL, is_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  splice_binding_init(env, exports);
  udp_binding_init(env, exports);
  dial_binding_init(env, exports);
  accept_binding_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
