import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type * as ProtoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { loadSync, type MethodDefinition } from '../../src/etcd/grpc-package-definition.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// The loader etcd3 itself requires, and the options it loads rpc.proto with (etcd3/lib/connection-pool.js).
const etcd3 = createRequire(createRequire(`${ROOT}/package.json`).resolve('etcd3'));
const protoLoader = etcd3('@grpc/proto-loader') as typeof ProtoLoader;
const RPC_PROTO = createRequire(`${ROOT}/package.json`).resolve('etcd3/proto/rpc.proto');
const OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

const ours = loadSync(RPC_PROTO, OPTIONS);
const theirs = protoLoader.loadSync(RPC_PROTO, OPTIONS);
const services = Object.keys(theirs).filter((name) => name.startsWith('etcdserverpb.') && !('format' in (theirs[name] as object)));
const methods = services.flatMap((service) => Object.keys(theirs[service] as object).map((method) => [service, method] as const));
const pair = (service: string, method: string): [MethodDefinition, ProtoLoader.MethodDefinition<object, object>] => [
  (ours[service] as Record<string, MethodDefinition>)[method] as MethodDefinition,
  (theirs[service] as ProtoLoader.ServiceDefinition)[method] as ProtoLoader.MethodDefinition<object, object>,
];

const LEASE = '7587875692063588123'; // above 2^53: kept whole as a string
const HEADER = { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '42', raft_term: '3' };
const KV = { key: Buffer.from('/skydns/local/skydns/env1/_tcp/_web/w1'), create_revision: '40', mod_revision: '41', version: '2', value: Buffer.from('{"host":"10.0.0.1","port":8080}'), lease: LEASE };

/** Messages as etcd3 sends and etcd answers them, for the methods a registration, the zone and the auth use. */
const MESSAGES: [service: string, method: string, request: object, response: object][] = [
  ['etcdserverpb.KV', 'Range', { key: KV.key, range_end: Buffer.from('/skydns0'), limit: '500', sort_order: 'ASCEND', sort_target: 'KEY', keys_only: false, revision: '41' }, { header: HEADER, kvs: [KV, { ...KV, lease: '0' }], more: true, count: '1200' }],
  ['etcdserverpb.KV', 'Put', { key: KV.key, value: KV.value, lease: LEASE, prev_kv: true }, { header: HEADER, prev_kv: KV }],
  ['etcdserverpb.KV', 'DeleteRange', { key: KV.key, range_end: Buffer.from([0]) }, { header: HEADER, deleted: '3', prev_kvs: [] }],
  [
    'etcdserverpb.KV', 'Txn',
    { compare: [{ result: 'EQUAL', target: 'MOD', key: KV.key, mod_revision: '41' }], success: [{ request_put: { key: KV.key, value: KV.value } }], failure: [{ request_range: { key: KV.key } }] },
    { header: HEADER, succeeded: true, responses: [{ response_put: { header: HEADER } }] },
  ],
  ['etcdserverpb.Watch', 'Watch', { create_request: { key: KV.key, range_end: Buffer.from('/skydns0'), start_revision: '42', progress_notify: true, prev_kv: true } }, { header: HEADER, watch_id: '1', created: true, events: [{ type: 'PUT', kv: KV }, { type: 'DELETE', kv: KV, prev_kv: KV }] }],
  ['etcdserverpb.Lease', 'LeaseGrant', { TTL: '10', ID: '0' }, { header: HEADER, ID: LEASE, TTL: '10', error: '' }],
  ['etcdserverpb.Lease', 'LeaseKeepAlive', { ID: LEASE }, { header: HEADER, ID: LEASE, TTL: '9' }],
  ['etcdserverpb.Lease', 'LeaseRevoke', { ID: LEASE }, { header: HEADER }],
  ['etcdserverpb.Auth', 'Authenticate', { name: 'srvlink', password: 'secret' }, { header: HEADER, token: 'abc.def' }],
  ['etcdserverpb.Cluster', 'MemberList', { linearizable: true }, { header: HEADER, members: [{ ID: '1', name: 'm1', peerURLs: ['http://127.0.0.1:2380'], clientURLs: ['http://127.0.0.1:2379'], isLearner: false }] }],
];

describe('etcd gRPC definitions without proto-loader', () => {
  it('are what src/etcd/generate-rpc-descriptor.mjs makes of the rpc.proto of the etcd3 installed', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [`${ROOT}/src/etcd/generate-rpc-descriptor.mjs`]);
    expect(stdout, 'src/etcd/etcd-rpc-descriptor.ts is stale: run node src/etcd/generate-rpc-descriptor.mjs --write').toBe(readFileSync(`${ROOT}/src/etcd/etcd-rpc-descriptor.ts`, 'utf8'));
  });

  it('have the services and methods proto-loader gives etcd3, with the same paths, streams and names', () => {
    expect(services.length).toBeGreaterThanOrEqual(6);
    expect(Object.keys(ours).sort()).toEqual([...services].sort());
    for (const service of services) expect(Object.keys(ours[service] as object).sort()).toEqual(Object.keys(theirs[service] as object).sort());
    for (const [service, method] of methods) {
      const [a, b] = pair(service, method);
      expect({ path: a.path, requestStream: a.requestStream, responseStream: a.responseStream, originalName: a.originalName }).toEqual({
        path: b.path, requestStream: b.requestStream, responseStream: b.responseStream, originalName: b.originalName,
      });
    }
  });

  it.each(methods)('%s/%s: an empty message and an empty object encode and decode as proto-loader does (every default)', (service, method) => {
    const [a, b] = pair(service, method);
    const empty = Buffer.alloc(0);
    expect(a.requestDeserialize(empty)).toEqual(b.requestDeserialize(empty));
    expect(a.responseDeserialize(empty)).toEqual(b.responseDeserialize(empty));
    expect(Buffer.from(a.requestSerialize({}))).toEqual(Buffer.from(b.requestSerialize({})));
    expect(Buffer.from(a.responseSerialize({}))).toEqual(Buffer.from(b.responseSerialize({})));
  });

  it.each(MESSAGES)('%s/%s: the same bytes and the same objects as proto-loader', (service, method, request, response) => {
    const [a, b] = pair(service, method);
    for (const [value, serialize, deserialize, theirSerialize, theirDeserialize] of [
      [request, a.requestSerialize, a.requestDeserialize, b.requestSerialize, b.requestDeserialize],
      [response, a.responseSerialize, a.responseDeserialize, b.responseSerialize, b.responseDeserialize],
    ] as const) {
      const bytes = serialize(value);
      expect(Buffer.isBuffer(bytes)).toBe(true);
      expect(bytes).toEqual(Buffer.from(theirSerialize(value)));
      expect(deserialize(bytes)).toEqual(theirDeserialize(bytes));
    }
    // Whole 64-bit values survive: lease IDs are above 2^53.
    if ('ID' in response) expect(a.responseDeserialize(a.responseSerialize(response))).toMatchObject({ ID: LEASE });
  });

  it('refuses another file, options the pre-parsed definitions were not made for, and an array for a message', () => {
    expect(() => loadSync(RPC_PROTO, { ...OPTIONS, keepCase: false })).toThrow(/keepCase/);
    expect(() => loadSync('channelz.proto', OPTIONS)).toThrow(/only etcd's rpc.proto/);
    const [a] = pair('etcdserverpb.KV', 'Put');
    expect(() => a.requestSerialize([] as unknown as object)).toThrow(/array/);
  });
});
