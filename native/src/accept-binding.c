/* See accept-binding.h. */
#define _GNU_SOURCE
#include "accept-binding.h"
#include "napi-helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* Clients accepted per wake-up of the loop at most: other handles (dial ends, timers) get their turn between bursts. */
#define ACCEPT_BATCH 64

struct listener {
  uv_poll_t poll; /* first: the handle's address is the listener's */
  napi_env env;
  napi_ref on_accept;
  napi_async_context async;
  int fd;
  uint32_t id;
  bool peers;
  bool closing;
  /* In on_readable, whose callback scope uses `async`: its destroy waits for the end of the burst. */
  bool in_burst;
  struct listener *next;
};

/* Listeners of every environment, each touched on its own JS thread only; the list is per process, under no lock, as only ids are looked up on a JS thread. */
static struct listener *listeners;
static uint32_t next_id;
/*
 * A spare descriptor for EMFILE: closed to accept (and close at once) the
 * connection the kernel holds, as libuv does, or the listening socket would
 * stay readable and the loop would spin on it.
 */
static int spare_fd = -1;

static void take_spare(void) {
  if (spare_fd < 0) spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void shed_one(int listen_fd) {
  if (spare_fd < 0) return;
  close(spare_fd);
  spare_fd = -1;
  int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0) close(fd);
  take_spare();
}

static void free_listener(uv_handle_t *handle) {
  struct listener *l = (struct listener *)handle;
  if (l->fd >= 0) close(l->fd);
  free(l);
}

static void unlink_listener(struct listener *l) {
  for (struct listener **p = &listeners; *p != NULL; p = &(*p)->next) {
    if (*p == l) {
      *p = l->next;
      return;
    }
  }
}

/* Stop and close the socket; the JS references go at once, the memory once the loop has closed the handle. */
static void close_listener(struct listener *l, bool env_alive) {
  if (l->closing) return;
  l->closing = true;
  unlink_listener(l);
  if (env_alive) {
    if (l->async && !l->in_burst) napi_async_destroy(l->env, l->async);
    if (l->on_accept) napi_delete_reference(l->env, l->on_accept);
  }
  if (!l->in_burst) l->async = NULL;
  l->on_accept = NULL;
  /*
   * uv_close stops the handle at once (the descriptor leaves the loop's
   * epoll set in this call; only the free waits for the loop): then the
   * socket is closed in this very call too, so that a connect from now on
   * is refused (a drain stops accepting at once), not queued and reset.
   */
  uv_close((uv_handle_t *)&l->poll, free_listener);
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}

static void cleanup_hook(void *arg) {
  close_listener(arg, true);
}

/* "address:port", as Node's remoteAddress and remotePort read. */
static void format_peer(const struct sockaddr_storage *addr, char *out, size_t size) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (addr->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
    inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
    port = ntohs(v4->sin_port);
  } else if (addr->ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
  }
  snprintf(out, size, "%s:%u", host, port);
}

/* What one burst of accepts calls: the callback, got once, within one callback scope opened at the first client. */
struct burst {
  napi_value callback, recv;
  napi_callback_scope scope;
  bool open;
};

/* One client (fd >= 0, peer or NULL) or one failure (fd = -errno) to the callback; false when it cannot be called. */
static bool tell(struct listener *l, struct burst *burst, int fd, const char *peer) {
  napi_env env = l->env;
  if (l->on_accept == NULL) return false;
  if (!burst->open) {
    if (napi_get_reference_value(env, l->on_accept, &burst->callback) != napi_ok || burst->callback == NULL || napi_get_global(env, &burst->recv) != napi_ok ||
        napi_open_callback_scope(env, burst->recv, l->async, &burst->scope) != napi_ok) {
      return false;
    }
    burst->open = true;
  }
  napi_value argv[2];
  napi_create_int32(env, fd, &argv[0]);
  if (peer != NULL) napi_create_string_utf8(env, peer, NAPI_AUTO_LENGTH, &argv[1]);
  else napi_get_undefined(env, &argv[1]);
  napi_status status = napi_call_function(env, burst->recv, burst->callback, 2, argv, NULL);
  if (status == napi_pending_exception) {
    /* A bug in the callback: to the process, as an uncaught exception. */
    napi_value error;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
  }
  return true;
}

/*
 * The listening socket is readable: accept a burst, each client told by
 * one call of the callback, all in one callback scope, so that the
 * microtasks and ticks they queue run once, after the last (not once per
 * client, as a napi_make_callback each would).
 */
static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  struct listener *l = (struct listener *)handle;
  if (status < 0 || l->closing) return;
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  struct burst burst = {.open = false};
  l->in_burst = true;
  for (int i = 0; i < ACCEPT_BATCH && !l->closing; i++) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int fd = accept4(l->fd, l->peers ? (struct sockaddr *)&addr : NULL, l->peers ? &len : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EMFILE || err == ENFILE) shed_one(l->fd);
      tell(l, &burst, -err, NULL);
      break;
    }
    /* As the dial plane sets it on backends: one-byte exchanges must not wait for Nagle. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char peer[INET6_ADDRSTRLEN + 8];
    if (l->peers) format_peer(&addr, peer, sizeof peer);
    if (!tell(l, &burst, fd, l->peers ? peer : NULL)) close(fd);
    /* The callback may have closed this listener (a drain): `l` is still there until the loop closes the handle. */
  }
  if (burst.open) napi_close_callback_scope(env, burst.scope);
  l->in_burst = false;
  /* Closed during the burst: what close_listener left to do. */
  if (l->closing && l->async) {
    napi_async_destroy(env, l->async);
    l->async = NULL;
  }
  napi_close_handle_scope(env, scope);
}

static napi_value accept_listen(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char host[64];
  size_t hostlen = 0;
  int64_t port = -1;
  napi_valuetype type = napi_undefined;
  bool peers = false;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hostlen) != napi_ok ||
      napi_get_value_int64(env, argv[1], &port) != napi_ok || port < 0 || port > 65535 || napi_typeof(env, argv[2], &type) != napi_ok ||
      type != napi_function || napi_get_value_bool(env, argv[3], &peers) != napi_ok) {
    napi_throw_type_error(env, NULL, "acceptListen expects an IP address, a port, a callback and whether to tell peers");
    return NULL;
  }
  struct sockaddr_storage addr;
  socklen_t len;
  if (!socket_address(host, (uint16_t)port, &addr, &len)) {
    napi_throw_type_error(env, "ERR_NOT_IP", "acceptListen expects an IP address");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) {
    napi_throw_error(env, NULL, "cannot listen: no event loop");
    return NULL;
  }
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "open a listening socket", errno);
  int one = 1, zero = 0;
  /* As libuv does for net.Server: SO_REUSEADDR, and an IPv6 listener takes IPv4 too ("::"). */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, 511) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "listen", err);
  }
  struct sockaddr_storage bound;
  socklen_t boundlen = sizeof bound;
  unsigned bound_port = 0;
  if (getsockname(fd, (struct sockaddr *)&bound, &boundlen) == 0) {
    bound_port = bound.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&bound)->sin_port) : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
  }
  struct listener *l = calloc(1, sizeof *l);
  if (l == NULL) {
    close(fd);
    return throw_errno(env, "listen", ENOMEM);
  }
  l->env = env;
  l->fd = fd;
  l->peers = peers;
  napi_value name;
  napi_create_string_utf8(env, "srvlink accept", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[2], 1, &l->on_accept) != napi_ok || napi_async_init(env, NULL, name, &l->async) != napi_ok ||
      uv_poll_init(loop, &l->poll, fd) != 0) {
    if (l->on_accept) napi_delete_reference(env, l->on_accept);
    if (l->async) napi_async_destroy(env, l->async);
    close(fd);
    free(l);
    napi_throw_error(env, NULL, "cannot listen: no poll handle");
    return NULL;
  }
  take_spare();
  l->id = ++next_id;
  l->next = listeners;
  listeners = l;
  uv_poll_start(&l->poll, UV_READABLE, on_readable);
  napi_add_env_cleanup_hook(env, cleanup_hook, l);
  napi_value result;
  napi_create_object(env, &result);
  set_number(env, result, "id", l->id);
  set_number(env, result, "port", bound_port);
  return result;
}

static napi_value accept_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t id = 0;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &id) != napi_ok || id <= 0) {
    napi_throw_type_error(env, NULL, "acceptClose expects a listener id");
    return NULL;
  }
  for (struct listener *l = listeners; l != NULL; l = l->next) {
    if (l->id == (uint32_t)id && l->env == env) {
      napi_remove_env_cleanup_hook(env, cleanup_hook, l);
      close_listener(l, true);
      break;
    }
  }
  return NULL;
}

static napi_value accept_reset(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t fd = -1;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &fd) != napi_ok || fd < 0 || fd > INT32_MAX) {
    napi_throw_type_error(env, NULL, "acceptReset expects a descriptor");
    return NULL;
  }
  struct linger linger = {.l_onoff = 1, .l_linger = 0};
  setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
  close((int)fd);
  return NULL;
}

napi_status accept_binding_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"acceptListen", NULL, accept_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptClose", NULL, accept_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptReset", NULL, accept_reset, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
