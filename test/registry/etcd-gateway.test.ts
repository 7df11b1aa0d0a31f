/**
 * The client of etcd's JSON gateway against a real etcd: failover past
 * members that refuse or never answer, etcd's own errors, auth tokens that
 * die with a restart of the member.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EtcdCallError, EtcdGateway, GRPC_NOT_FOUND } from '../../src/registry/etcd-gateway.js';
import { startEtcd } from '../helpers/etcd.js';
import { freePort } from '../helpers/free-port.js';

const deadline = (): number => Date.now() + 20_000;

function gateway(options: ConstructorParameters<typeof EtcdGateway>[0]): EtcdGateway {
  const client = new EtcdGateway(options);
  onTestFinished(() => client.close());
  return client;
}

/** A member that accepts connections and never says a word. */
async function silentServer(): Promise<string> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}

describe('EtcdGateway', () => {
  it('skips a member that refuses and one that never answers, then keeps to the one that did', async () => {
    const etcd = await startEtcd();
    const refused = `http://127.0.0.1:${await freePort()}`;
    const client = gateway({ endpoints: [refused, await silentServer(), ...etcd.endpoints], attemptTimeout: 500 });
    const granted = await client.call<{ ID?: string; TTL?: string }>('lease/grant', { TTL: 30 }, deadline());
    expect(granted.TTL).toBe('30');
    const renewed = await client.call<{ ID?: string; TTL?: string }>('lease/keepalive', { ID: granted.ID }, deadline());
    expect(renewed.ID).toBe(granted.ID);
    const ttl = await etcd.etcdctl(['lease', 'timetolive', BigInt(granted.ID as string).toString(16)]);
    expect(ttl.stdout).toContain('granted with TTL(30s)');
  });

  it('says which members it tried and why when none answers', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    const client = gateway({ endpoints: [refused], attemptTimeout: 500 });
    const failure = client.call('lease/grant', { TTL: 5 }, deadline());
    await expect(failure).rejects.toThrow(EtcdCallError);
    await expect(failure).rejects.toThrow(`cannot call etcd lease/grant: ${refused}: connect ECONNREFUSED`);
    await expect(failure).rejects.toMatchObject({ code: 'ERR_ETCD', grpcCode: undefined });
  });

  it("passes etcd's own errors on with their gRPC code, without trying other members", async () => {
    const etcd = await startEtcd();
    const client = gateway({ endpoints: etcd.endpoints });
    const failure = client.call('lease/revoke', { ID: '12345' }, deadline());
    await expect(failure).rejects.toThrow('etcd refused lease/revoke: etcdserver: requested lease not found');
    await expect(failure).rejects.toMatchObject({ code: 'ERR_ETCD', grpcCode: GRPC_NOT_FOUND });
  });

  it('authenticates, refuses a wrong password clearly, and asks for a new token after the member restarted', async () => {
    const etcd = await startEtcd();
    expect((await etcd.etcdctl(['user', 'add', 'root:s3cret-pw'])).code).toBe(0);
    expect((await etcd.etcdctl(['auth', 'enable'])).code).toBe(0);
    const wrong = gateway({ endpoints: etcd.endpoints, auth: { username: 'root', password: 'nope' } });
    await expect(wrong.call('lease/grant', { TTL: 5 }, deadline())).rejects.toThrow('etcd refused auth/authenticate: etcdserver: authentication failed, invalid user ID or password');
    const client = gateway({ endpoints: etcd.endpoints, auth: { username: 'root', password: 's3cret-pw' } });
    const key = Buffer.from('/skydns/test/a').toString('base64');
    await client.call('kv/put', { key, value: Buffer.from('1').toString('base64') }, deadline());
    // Simple tokens live in the member's memory only: a restarted member no longer knows the one we hold.
    const member = etcd.members[0];
    await member?.stop();
    await member?.start();
    await client.call('kv/put', { key, value: Buffer.from('3').toString('base64') }, deadline());
    expect((await etcd.etcdctl(['--user', 'root:s3cret-pw', 'get', '/skydns/test/a', '--print-value-only'])).stdout.trim()).toBe('3');
  });
});
