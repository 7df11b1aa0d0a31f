/* Small helpers shared by the bindings (reaper, splice, dial, accept, udp). */
#ifndef SRVLINK_NAPI_HELPERS_H
#define SRVLINK_NAPI_HELPERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

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

/* `host` (an IPv4 or IPv6 address, no name) and `port` as a socket address; false when `host` is no address. */
static inline bool socket_address(const char *host, uint16_t port, struct sockaddr_storage *addr, socklen_t *len) {
  memset(addr, 0, sizeof *addr);
  struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof *v4;
    return true;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *len = sizeof *v6;
    return true;
  }
  return false;
}

#endif
