/**
 * `--dns-fast-path` of `srvlink run` (the stub) and `srvlink dns`: by
 * default (auto) the native UDP path reads the queries when the addon
 * loads; with the addon removed srvlink says so in one line (the data
 * plane's line when it misses the addon too) and answers on the JS path;
 * `native` without the addon is a start-up error. dig asks, dnsmasq is the
 * stub's upstream; a records file rewritten is seen by dig on either path.
 * A wall clock stepped under libfaketime (its multi-threaded library
 * preloaded, reaching Node and the addon's thread alike) does not age the
 * native table's entries: they are kept on the monotonic clock.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { loadNativeAddon } from '../../src/core/native-addon.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq } from '../helpers/dnsmasq.js';
import { runSrvlink, spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const NO_ADDON = { SRVLINK_NATIVE_ADDON: '/nonexistent/srvlink_native.node' };
const hasFastPath = loadNativeAddon().addon?.udpOpen !== undefined;

async function startRun(extra: string[], env: NodeJS.ProcessEnv = {}): Promise<{ srvlink: SrvlinkProcess; stub: HostPort; settings: Record<string, unknown> }> {
  const dnsmasq = await startDnsmasq({ localZones: ['fast.test'], hosts: [{ name: 'www.fast.test', address: '192.0.2.10' }] });
  const upstream = `${dnsmasq.address.host}:${dnsmasq.address.port}`;
  const args = ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=svc', '--backend', 'svc=127.0.0.1:9'];
  const srvlink = spawnSrvlink([...args, '--dns-listen', '127.0.0.1:0', '--cluster-dns', upstream, '--upstream', upstream, ...extra], { env });
  const listening = await srvlink.waitForLog((line) => line.msg === 'dns stub listening');
  const ready = await srvlink.waitForLog((line) => line.msg === 'srvlink run ready');
  return { srvlink, stub: parseHostPort(String(listening.address), 'address'), settings: ready.settings as Record<string, unknown> };
}

async function answers(stub: HostPort): Promise<void> {
  for (let i = 0; i < 3; i++) expect((await dig(stub, 'www.fast.test', 'A')).answer.map((r) => r.data)).toEqual(['192.0.2.10']);
}

/** Where Debian's libfaketime puts its library (`make test` installs it). */
const FAKETIME_LIBRARY = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1'].find((path) => existsSync(path));

const warnings = (srvlink: SrvlinkProcess): unknown[] => srvlink.logs.filter((line) => line.level === 'warn');

describe('srvlink run --dns-fast-path', () => {
  it('without the addon: one warning line for the data plane and the stub, and the stub answers', async () => {
    const { srvlink, stub, settings } = await startRun([], NO_ADDON);
    expect(settings).toMatchObject({ dataPlane: 'js', dnsFastPath: 'js' });
    await answers(stub);
    expect(warnings(srvlink)).toEqual([expect.objectContaining({ msg: 'forwarding on the JS data plane: the native one is not available', dnsFastPath: 'js' })]);
  });

  it('without the addon and --data-plane js: the one warning line is the stub\'s', async () => {
    const { srvlink, stub } = await startRun(['--data-plane', 'js'], NO_ADDON);
    await answers(stub);
    expect(warnings(srvlink)).toEqual([
      expect.objectContaining({ msg: 'dns udp queries answered on the JS path: the native fast path is not available', reason: expect.stringContaining('/nonexistent/srvlink_native.node') }),
    ]);
  });

  it('--dns-fast-path native without the addon does not start, and says why', async () => {
    const run = await runSrvlink(['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=svc', '--backend', 'svc=127.0.0.1:9', '--dns-listen', '127.0.0.1:0', '--data-plane', 'js', '--dns-fast-path', 'native'], { env: NO_ADDON });
    expect(run.code).not.toBe(0);
    expect(run.messages).toContain('invalid --dns-fast-path "native": no native addon at "/nonexistent/srvlink_native.node"');
  });

  it('refuses a path it does not know, naming the choices', async () => {
    const run = await runSrvlink(['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=svc', '--backend', 'svc=127.0.0.1:9', '--dns-fast-path', 'fast']);
    expect(run.code).not.toBe(0);
    expect(run.messages).toContain('invalid --dns-fast-path "fast": expected native, js or auto');
  });

  it('--dns-fast-path js answers in JavaScript, with no warning', async () => {
    const { srvlink, stub, settings } = await startRun(['--dns-fast-path', 'js']);
    expect(settings.dnsFastPath).toBe('js');
    await answers(stub);
    expect(warnings(srvlink)).toEqual([]);
  });

  it.skipIf(!hasFastPath || FAKETIME_LIBRARY === undefined)('a wall clock stepped a day ahead does not expire what the native path answers', async () => {
    const dnsmasq = await startDnsmasq({ localZones: ['fast.test'], hosts: [{ name: 'www.fast.test', address: '192.0.2.10' }], ttl: 300 });
    const upstream = `${dnsmasq.address.host}:${dnsmasq.address.port}`;
    const clock = join(tempDir(), 'clock');
    writeFileSync(clock, '+0\n');
    const env = { LD_PRELOAD: FAKETIME_LIBRARY, FAKETIME_TIMESTAMP_FILE: clock, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
    const args = ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=svc', '--backend', 'svc=127.0.0.1:9'];
    const srvlink = spawnSrvlink([...args, '--dns-listen', '127.0.0.1:0', '--cluster-dns', upstream, '--upstream', upstream], { env });
    const listening = await srvlink.waitForLog((line) => line.msg === 'dns stub listening');
    expect((await srvlink.waitForLog((line) => line.msg === 'srvlink run ready')).settings).toMatchObject({ dnsFastPath: 'native' });
    const stub = parseHostPort(String(listening.address), 'address');
    await answers(stub);
    // Nothing but the table can answer now: the upstream is gone.
    await dnsmasq.stop();
    writeFileSync(clock, '+1d\n');
    const after = await dig(stub, 'www.fast.test', 'A');
    expect(after.status).toBe('NOERROR');
    expect(after.answer).toEqual([expect.objectContaining({ data: '192.0.2.10' })]);
    // Aged by the seconds that passed, not by the day the clock jumped.
    expect(after.answer[0]?.ttl).toBeGreaterThan(200);
  });

  it.skipIf(!hasFastPath)('by default reads the stub\'s UDP queries natively when the addon loads', async () => {
    const { srvlink, stub, settings } = await startRun([]);
    expect(settings.dnsFastPath).toBe('native');
    await answers(stub);
    expect(warnings(srvlink)).toEqual([]);
  });
});

describe('srvlink dns --dns-fast-path', () => {
  it.skipIf(!hasFastPath)('counts the answers the native path gave in /metrics, as the JS path counts them', async () => {
    const dir = tempDir();
    const file = join(dir, 'records.yaml');
    writeFileSync(file, '/skydns/local/skydns/env1/_tcp/_web/w1: {host: 10.0.0.1, port: 80}\n');
    const srvlink = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--zone', 'skydns.local', '--records', file, '--admin', '127.0.0.1:0']);
    const line = await srvlink.waitForLog((l) => l.msg === 'dns server listening');
    expect(line.dnsFastPath).toBe('native');
    const admin = parseHostPort(String((await srvlink.waitForLog((l) => l.msg === 'admin endpoint listening')).address), 'admin');
    const address = parseHostPort(String(line.address), 'address');
    for (let i = 0; i < 10; i++) expect((await dig(address, '_web._tcp.env1.skydns.local', 'SRV')).answer).toHaveLength(1);
    const counted = async (): Promise<number> => {
      const text = await (await fetch(`http://${admin.host}:${admin.port}/metrics`)).text();
      const found = /^srvlink_dns_queries_total\{listener="dns",type="SRV",rcode="NOERROR"\} (\d+)$/m.exec(text);
      return Number(found?.[1] ?? 0);
    };
    await waitFor(async () => (await counted()) === 10, { what: 'ten SRV answers counted' });
  });

  it.skipIf(!hasFastPath)('an idle server hardly wakes: the native hits are counted less often while none come', async () => {
    const dir = tempDir();
    const file = join(dir, 'records.yaml');
    writeFileSync(file, '/skydns/local/skydns/env1/_tcp/_web/w1: {host: 10.0.0.1, port: 80}\n');
    const srvlink = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--zone', 'skydns.local', '--records', file]);
    const line = await srvlink.waitForLog((l) => l.msg === 'dns server listening');
    expect(line.dnsFastPath).toBe('native');
    const address = parseHostPort(String(line.address), 'address');
    for (let i = 0; i < 3; i++) expect((await dig(address, '_web._tcp.env1.skydns.local', 'SRV')).answer).toHaveLength(1);
    const pid = srvlink.child.pid as number;
    // The times the main thread went to sleep and was woken; a count every 100 ms would be 40 in 4 s.
    const wakeups = (): number => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1]);
    // Not an event to await: the time the counting takes to slow down (100 ms doubling to 2 s), then a window of idleness.
    await sleep(4000);
    const before = wakeups();
    await sleep(4000);
    expect(wakeups() - before).toBeLessThan(15);
    // And it still counts what comes.
    expect((await dig(address, '_web._tcp.env1.skydns.local', 'SRV')).answer).toHaveLength(1);
  });

  async function startDns(records: string, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<{ srvlink: SrvlinkProcess; address: HostPort; line: Record<string, unknown> }> {
    const srvlink = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--zone', 'skydns.local', '--records', records, ...extra], { env });
    const line = await srvlink.waitForLog((l) => l.msg === 'dns server listening');
    return { srvlink, address: parseHostPort(String(line.address), 'address'), line };
  }

  it.each([
    { path: 'auto', env: {}, expected: hasFastPath ? 'native' : 'js' },
    { path: 'js', env: {}, expected: 'js' },
    { path: 'auto', env: NO_ADDON, expected: 'js' },
  ])('--dns-fast-path $path ($expected): a rewritten records file is seen by the next digs', async ({ path, env, expected }) => {
    const dir = tempDir();
    const file = join(dir, 'records.yaml');
    const key = '/skydns/local/skydns/env1/_tcp/_web';
    writeFileSync(file, `${key}/w1: {host: 10.0.0.1, port: 80}\n`);
    const { srvlink, address, line } = await startDns(file, ['--dns-fast-path', path], env);
    expect(line.dnsFastPath).toBe(expected);
    const targets = async (): Promise<number> => (await dig(address, '_web._tcp.env1.skydns.local', 'SRV')).answer.length;
    for (let i = 0; i < 3; i++) expect(await targets()).toBe(1);
    const next = join(dir, 'next.yaml');
    writeFileSync(next, `${key}/w1: {host: 10.0.0.1, port: 80}\n${key}/w2: {host: 10.0.0.2, port: 80}\n`);
    renameSync(next, file);
    await waitFor(async () => (await targets()) === 2, { what: 'the second target' });
    for (let i = 0; i < 3; i++) expect(await targets()).toBe(2);
    const warned = warnings(srvlink);
    if (env === NO_ADDON) expect(warned).toEqual([expect.objectContaining({ msg: 'dns udp queries answered on the JS path: the native fast path is not available' })]);
    else expect(warned).toEqual([]);
  });
});
