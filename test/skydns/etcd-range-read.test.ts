import { Etcd3 } from 'etcd3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { etcdFaultHandling } from '../../src/cli/etcd-fault-handling.js';
import { readRange } from '../../src/skydns/etcd-range-read.js';
import { startEtcd } from '../helpers/etcd.js';

const KIB = 1024;
const deadline = (): { deadline: number } => ({ deadline: Date.now() + 10_000 });

/**
 * A client as srvlink makes them (its fault handling), whose responses may be at most `maxReceive`
 * bytes: gRPC's limit is 4 MiB by default, a small one makes large values cheap to test.
 */
function client(endpoints: string[], maxReceive: number): Etcd3 {
  const etcd = new Etcd3({ hosts: endpoints, faultHandling: etcdFaultHandling(), grpcOptions: { 'grpc.max_receive_message_length': maxReceive } });
  onTestFinished(() => etcd.close());
  return etcd;
}

describe('readRange (real etcd)', () => {
  it('reads a prefix whose values together exceed one response, in pages at one revision; a value too large alone is named, not fatal', async () => {
    const cluster = await startEtcd();
    const writer = client(cluster.endpoints, 64 * 2 ** 20);
    const keys = Array.from({ length: 2500 }, (_, i) => `/skydns/a/k${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 500) await Promise.all(keys.slice(i, i + 500).map((key) => writer.put(key).value('{"host":"10.0.0.1"}').exec()));
    // Twenty values of 100 KiB among them: 2 MB in all, far over the reader's 256 KiB; one of 300 KiB, over it alone.
    for (let i = 0; i < 20; i++) await writer.put(`/skydns/a/k${String(i * 100).padStart(5, '0')}-big`).value('x'.repeat(100 * KIB)).exec();
    await writer.put('/skydns/a/k01234-huge').value('y'.repeat(300 * KIB)).exec();
    await writer.put('/skydnsx/beside').value('{}').exec();
    const reader = client(cluster.endpoints, 256 * KIB);
    await expect(reader.getAll().prefix('/skydns/').exec()).rejects.toThrow(/RESOURCE_EXHAUSTED/);

    const read = await readRange(reader, '/skydns/', deadline);
    expect(read.kvs.map((kv) => kv.key.toString())).toEqual(
      [...keys, ...Array.from({ length: 20 }, (_, i) => `/skydns/a/k${String(i * 100).padStart(5, '0')}-big`)].sort(),
    );
    expect(read.kvs.filter((kv) => kv.value.length === 100 * KIB)).toHaveLength(20);
    expect(read.oversized.map((key) => key.toString())).toEqual(['/skydns/a/k01234-huge']);
    expect(read.revision).toBe(Number((await writer.get('/skydnsx/beside').exec()).header.revision));

    // With room enough, nothing is oversized; and the reader was never shut out of its member.
    const roomy = await readRange(writer, '/skydns/', deadline);
    expect(roomy.kvs).toHaveLength(keys.length + 21);
    expect(roomy.oversized).toEqual([]);
    expect((await reader.get(keys[0] as string).string()) ?? '').toContain('10.0.0.1');
  });
});
