/*
 * The JavaScript side of the native data plane (splice-plane.h):
 *   spliceStart(onEnd: (id, bytesIn, bytesOut, end, errno) => void, options?: { threads?, maxPipes?, migrateBytes?, migrateMs? }): void
 *     onEnd is called on the loop, from a callback of it (never from within spliceAdd or spliceAbort), for
 *     the ends of a batch of pairs one after the other in one callback scope
 *     (microtasks run after the last)
 *   spliceAdd(clientFd, backendFd, idleMs, own?): number   the pair's id; own: 1 the client's, 2 the backend's descriptor is taken as it is (no duplicate)
 *   spliceAbort(id: number): void
 *   spliceStats(): { pairs, loopPairs, migrated, pooledPipes, poolMax, pipesOpen, maxPipes, threads, pipeBytes, pipeBudget, copiedBytes }
 * One plane per Node environment, started by spliceStart and stopped when
 * the environment (or the process) ends.
 */
#ifndef SRVLINK_SPLICE_BINDING_H
#define SRVLINK_SPLICE_BINDING_H

#include <node_api.h>

/* Add the splice* functions to `exports`. */
napi_status splice_binding_init(napi_env env, napi_value exports);

#endif
