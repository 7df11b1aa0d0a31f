import { describe, expect, it } from 'vitest';
import { startEtcd } from '../helpers/etcd.js';

describe('the etcd test harness', () => {
  it('starts a member, keeps its data across a restart', async () => {
    const etcd = await startEtcd();
    expect((await etcd.etcdctl(['put', '/skydns/x', '{"host":"10.0.0.1"}'])).code).toBe(0);
    const member = etcd.members[0];
    await member?.stop();
    expect(member?.running).toBe(false);
    await member?.start();
    expect((await etcd.etcdctl(['get', '/skydns/x', '--print-value-only'])).stdout.trim()).toBe('{"host":"10.0.0.1"}');
  });

  it('runs a three-member cluster that survives the loss of one', async () => {
    const etcd = await startEtcd({ size: 3 });
    await etcd.members[0]?.stop();
    expect((await etcd.etcdctl(['put', '/skydns/y', 'v'])).code).toBe(0);
    expect((await etcd.etcdctl(['get', '/skydns/y', '--print-value-only'])).stdout.trim()).toBe('v');
  });
});
