/*
 * Native accept: a listening TCP socket of the forwarder's, watched by the
 * event loop itself (a libuv poll handle), whose clients are accepted in C
 * (accept4, non-blocking, close-on-exec) and told to JavaScript as
 * descriptors: no JavaScript socket, stream or listener is made for a
 * client the native data plane forwards. The forwarder still decides
 * everything about each client (limits, backend order, failover,
 * ejection); it hands the descriptor to the dial and splice planes, or
 * resets it (acceptReset).
 *
 * acceptListen(host, port, onAccept(fd, peer), peers): { id, port };
 *   host an IP literal; onAccept is called once per client, from a callback
 *   of the loop, with its descriptor (now the callee's) and, when `peers`,
 *   its "address:port"; or with a negative errno (EMFILE...) when accepting
 *   failed (the connection the kernel had is shed). Throws with the errno's
 *   code (E98...) when the bind or listen fails.
 * acceptClose(id): stop accepting and close the listening socket.
 * acceptReset(fd): close a client with a reset (SO_LINGER 0).
 */
#ifndef SRVLINK_ACCEPT_BINDING_H
#define SRVLINK_ACCEPT_BINDING_H

#include <node_api.h>

napi_status accept_binding_init(napi_env env, napi_value exports);

#endif
