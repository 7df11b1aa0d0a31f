/*
 * Node-API exports of the native dials (dial-plane.c), on the event loop of
 * the environment that calls them:
 *   dialStart(onEnd: (id, fd, error) => void): void   once per environment
 *   dialConnect(host: string, port: number, timeoutMs: number): number   an IP literal; the dial's id
 *   dialAbort(id: number): void
 * onEnd is called once per dial, from the loop, never from within
 * dialConnect or dialAbort: `error` 0 with `fd` the connected socket (the
 * callback's to close), else an errno value, -1 (the connect timeout ran
 * out) or -2 (aborted), with `fd` -1.
 */
#ifndef SRVLINK_DIAL_BINDING_H
#define SRVLINK_DIAL_BINDING_H

#include <node_api.h>

napi_status dial_binding_init(napi_env env, napi_value exports);

#endif
