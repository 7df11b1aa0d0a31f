/*
 * The JavaScript side of the native UDP fast path (udp-plane.h):
 *   udpOpen(fd, maxEntries, maxBytes, onMiss: (batch: (Buffer | string | number)[]) => void): handle
 *       batch: datagram, address, port, datagram, address, port, ...
 *   udpPut(handle, id, key: Buffer, reply: Buffer, ttlOffsets: number[], ttls: number[], ageMs, lifeMs): boolean
 *       ageMs: how long ago the reply was stored (-1: its TTLs do not age); lifeMs: how long it is served
 *   udpDelete(handle, key: Buffer): void
 *   udpClear(handle): void
 *   udpAllow(handle, networks: Buffer | null): void   18 bytes each: family (4 or 6), prefix, 16 address bytes
 *   udpTakeHits(handle): number[]                     id, count, id, count, ...
 *   udpStats(handle): { hits, misses, dropped, entries, bytes }
 *   udpClose(handle): void                            safe to call twice
 * Any number of planes per environment, each stopped by udpClose, by the
 * environment's end or at exit.
 */
#ifndef SRVLINK_UDP_BINDING_H
#define SRVLINK_UDP_BINDING_H

#include <node_api.h>

/* Add the udp* functions to `exports`. */
napi_status udp_binding_init(napi_env env, napi_value exports);

#endif
