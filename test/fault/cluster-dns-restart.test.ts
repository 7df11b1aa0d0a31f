/**
 * Fault suite: the cluster DNS behind `srvlink run` (a real process) stopped
 * and started again during traffic: dnsmasq serving the SRV set, `srvlink
 * dns --etcd`, and etcd itself under `srvlink dns` and under `srvlink run
 * --discovery etcd`. Streams checksummed end to end through echo backends:
 * those established before the outage keep flowing through it, byte for
 * byte; new connections during the outage go to the last good set (RFC 8767
 * stale data, the discovery's last set); once the server is back srvlink
 * follows it without a restart, a changed set included.
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { patternAt, readPattern, type PatternReader } from '../helpers/byte-stream.js';
import { dig } from '../helpers/dig.js';
import { startDnsmasq, type DnsmasqSrv } from '../helpers/dnsmasq.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { freeRestartPort } from '../helpers/free-port.js';
import { reportScenario } from '../helpers/scenario-summary.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { startEchoBackend, type TcpBackend } from '../helpers/tcp-backends.js';
import { WAIT_TIMEOUT, waitFor } from '../helpers/wait-for.js';

const DOMAIN = 'env1.skydns.local';
const SRV = `_svc._tcp.${DOMAIN}`;
const KEY = '/skydns/local/skydns/env1/_tcp/_svc';
/** Record TTL, seconds: srvlink refreshes every second, so an outage is seen at once. */
const TTL = 1;
/** Bytes each short connection sends and must get back. */
const ROUND_TRIP_BYTES = 64 * 1024;
/** Long streams: a chunk every few ms per stream, enough to see every byte through the outage without loading a shared machine. */
const STREAM_CHUNK = 16 * 1024;
const STREAM_EVERY_MS = 10;

/** What every connection of a part did, for the summary line. */
class Ledger {
  connections = 0;
  bytesVerified = 0;
  readonly lost: string[] = [];
  /** Connections that reached a backend outside the set they had to use. */
  readonly misrouted: string[] = [];

  /** One connection's end: whole (every byte written came back, then a FIN) or lost. */
  settle(label: string, written: number, reader: PatternReader, end: 'fin' | 'reset' | 'timeout'): boolean {
    this.connections++;
    const whole = end === 'fin' && reader.mismatched === 0 && reader.received === written;
    if (whole) this.bytesVerified += reader.received;
    else this.lost.push(`${label}: ${end}, ${reader.received} of ${written} bytes back, ${reader.mismatched} mismatched`);
    return whole;
  }
}

function open(address: HostPort): Socket {
  const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true });
  socket.on('error', () => undefined);
  onTestFinished(() => void socket.destroy());
  return socket;
}

function ended(reader: PatternReader, socket: Socket, timeout: number): Promise<'fin' | 'reset' | 'timeout'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve('timeout');
      socket.destroy();
    }, timeout);
    void reader.ended.then((end) => {
      clearTimeout(timer);
      resolve(end);
    });
  });
}

/** A new connection through `address`: ROUND_TRIP_BYTES out, the same back, checked; whether it was whole. */
async function roundTrip(address: HostPort, ledger: Ledger, label: string): Promise<boolean> {
  const socket = open(address);
  const reader = readPattern(socket);
  socket.once('connect', () => {
    for (let offset = 0; offset < ROUND_TRIP_BYTES; offset += STREAM_CHUNK) socket.write(patternAt(offset, STREAM_CHUNK));
    socket.end();
  });
  return ledger.settle(label, ROUND_TRIP_BYTES, reader, await ended(reader, socket, WAIT_TIMEOUT));
}

/** A long stream through `address`, paced, until `finish()`: then it ends and must get every byte back. */
interface LongStream {
  readonly received: number;
  finish(): Promise<void>;
}

function longStream(address: HostPort, ledger: Ledger, label: string): LongStream {
  const socket = open(address);
  const reader = readPattern(socket);
  let written = 0;
  const pump = setInterval(() => {
    // Paced and bounded by backpressure: what is written is what the other side must echo.
    if (socket.connecting || !socket.writable || socket.writableNeedDrain) return;
    socket.write(patternAt(written, STREAM_CHUNK));
    written += STREAM_CHUNK;
  }, STREAM_EVERY_MS);
  onTestFinished(() => clearInterval(pump));
  return {
    get received() {
      return reader.received;
    },
    finish: async () => {
      clearInterval(pump);
      if (!socket.destroyed) socket.end();
      ledger.settle(label, written, reader, await ended(reader, socket, WAIT_TIMEOUT));
    },
  };
}

/** Open `count` long streams and wait until each has bytes back: established before the outage. */
async function establish(address: HostPort, ledger: Ledger, label: string, count: number): Promise<LongStream[]> {
  const streams = Array.from({ length: count }, (_, i) => longStream(address, ledger, `${label} stream ${i}`));
  await waitFor(() => streams.every((s) => s.received > 0), { what: `${count} streams through ${label} to flow` });
  return streams;
}

/** Every stream got more bytes back since `before`: the outage did not stop them. */
async function stillFlowing(streams: readonly LongStream[], before: readonly number[], what: string): Promise<void> {
  await waitFor(() => streams.every((s, i) => s.received > (before[i] ?? 0)), { what: `every established stream to keep flowing ${what}` });
}

/** Backends' accept counts now, to tell where the next connections went. */
function accepted(backends: readonly TcpBackend[]): number[] {
  return backends.map((b) => b.accepted);
}

/** `count` round trips, one after another; each must be whole and accepted by one of `expected`, none by `others`. */
async function connectionsGoTo(address: HostPort, ledger: Ledger, label: string, count: number, expected: readonly TcpBackend[], others: readonly TcpBackend[]): Promise<void> {
  const before = { expected: accepted(expected), others: accepted(others) };
  for (let i = 0; i < count; i++) await roundTrip(address, ledger, `${label} ${i}`);
  const since = (backends: readonly TcpBackend[], from: number[]): number => accepted(backends).reduce((total, n, i) => total + n - (from[i] ?? 0), 0);
  const names = (backends: readonly TcpBackend[]): string => backends.map((b) => b.name).join(' or ');
  const toExpected = since(expected, before.expected);
  const toOthers = since(others, before.others);
  if (toExpected !== count || toOthers !== 0) ledger.misrouted.push(`${label}: ${toExpected} of ${count} connections to ${names(expected)}, ${toOthers} to ${names(others)}`);
}

/**
 * Resolves once `proc` logs, after its `from`-th log line, that its backend
 * set changed to `count` backends: the set an etcd change goes through
 * (put one, delete two) has steps, and the last one is awaited.
 */
async function setChangedTo(proc: SrvlinkProcess, from: number, count: number): Promise<void> {
  await waitFor(() => proc.logs.slice(from).some((l) => l.msg === 'backend set changed' && l.backends === count), {
    what: `srvlink to follow the changed set (${count} backends)`,
    timeout: 30_000,
  });
}

async function startBackends(): Promise<{ a: TcpBackend; b: TcpBackend; c: TcpBackend }> {
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => startEchoBackend({ name })));
  return { a: a as TcpBackend, b: b as TcpBackend, c: c as TcpBackend };
}

/** `srvlink run` in front of service `svc`; resolves with it and its listener. */
async function startRun(discovery: string[]): Promise<{ proc: SrvlinkProcess; address: HostPort }> {
  const proc = spawnSrvlink(['run', '--dns-listen', 'none', '--domain', DOMAIN, '--map', '127.0.0.1:0=svc', '--connect-timeout', '1s', ...discovery]);
  const line = await proc.waitForLog((l) => l.msg === 'listening');
  return { proc, address: parseHostPort(String(line.address), 'address') };
}

async function startDns(etcd: EtcdCluster, listen: HostPort): Promise<SrvlinkProcess> {
  const proc = spawnSrvlink(['dns', '--listen', `${listen.host}:${listen.port}`, '--etcd', etcd.endpoints.join(',')]);
  await proc.waitForLog((l) => l.msg === 'dns server listening');
  return proc;
}

async function putBackend(etcd: EtcdCluster, backend: TcpBackend): Promise<void> {
  const put = await etcd.etcdctl(['put', `${KEY}/${backend.name}`, JSON.stringify({ host: '127.0.0.1', port: backend.address.port, ttl: TTL })]);
  expect(put.code, put.stderr).toBe(0);
}

async function deleteBackend(etcd: EtcdCluster, backend: TcpBackend): Promise<void> {
  expect((await etcd.etcdctl(['del', `${KEY}/${backend.name}`])).code).toBe(0);
}

const stale = (l: { msg: string }): boolean => l.msg === 'backend set is stale: refreshing fails';
const recovered = (l: { msg: string }): boolean => l.msg === 'dns discovery recovered, backends fresh again';

/** Print the part's line and fail on any loss. */
function summarize(part: string, ledger: Ledger, extra: string): void {
  reportScenario({ scenario: `cluster-dns-restart ${part}`, connections: ledger.connections, bytesVerified: ledger.bytesVerified, lost: ledger.lost.length, extra });
  expect({ lost: ledger.lost, misrouted: ledger.misrouted }).toEqual({ lost: [], misrouted: [] });
}

describe('cluster DNS stopped and started again under srvlink run', () => {
  it('dnsmasq: streams unaffected, the last good set during the outage, the restarted server followed with its new set', async () => {
    const { a, b, c } = await startBackends();
    const srv = (backend: TcpBackend): DnsmasqSrv => ({ name: SRV, target: `${backend.name}.${DOMAIN}`, port: backend.address.port, priority: 10, weight: 50 });
    const host = (backend: TcpBackend): { name: string; address: string } => ({ name: `${backend.name}.${DOMAIN}`, address: '127.0.0.1' });
    const dnsmasq = await startDnsmasq({ srv: [srv(a), srv(b)], hosts: [host(a), host(b)], ttl: TTL });
    const port = dnsmasq.address;
    const { proc, address } = await startRun(['--discovery', 'dns', '--cluster-dns', `${port.host}:${port.port}`]);
    const ledger = new Ledger();
    const streams = await establish(address, ledger, 'dnsmasq', 8);

    await dnsmasq.stop();
    await proc.waitForLog(stale);
    const atStop = streams.map((s) => s.received);
    await connectionsGoTo(address, ledger, 'outage', 10, [a, b], [c]);
    await stillFlowing(streams, atStop, 'while dnsmasq is down');

    // Back with another set: c alone.
    const from = proc.logs.length;
    await dnsmasq.start({ srv: [srv(c)], hosts: [host(c)] });
    expect(dnsmasq.address, 'dnsmasq back on its port (it was taken while it was down)').toEqual(port);
    await proc.waitForLog(recovered);
    await setChangedTo(proc, from, 1);
    await connectionsGoTo(address, ledger, 'new set', 10, [c], [a, b]);
    const atRestart = streams.map((s) => s.received);
    await stillFlowing(streams, atRestart, 'after dnsmasq is back');
    await Promise.all(streams.map((s) => s.finish()));
    expect(proc.child.exitCode).toBeNull();
    summarize('dnsmasq', ledger, '8 streams through the outage, 10 new connections on the last good set, 10 on the set it came back with');
  });

  it('srvlink dns --etcd: the same, with the set changed in etcd once it is back', async () => {
    const { a, b, c } = await startBackends();
    const etcd = await startEtcd();
    await putBackend(etcd, a);
    await putBackend(etcd, b);
    const listen = { host: '127.0.0.1', port: await freeRestartPort() };
    let dns = await startDns(etcd, listen);
    const { proc, address } = await startRun(['--discovery', 'dns', '--cluster-dns', `${listen.host}:${listen.port}`]);
    const ledger = new Ledger();
    const streams = await establish(address, ledger, 'srvlink-dns', 8);

    expect(await dns.stop('SIGTERM')).toBe(0);
    await proc.waitForLog(stale);
    const atStop = streams.map((s) => s.received);
    await connectionsGoTo(address, ledger, 'outage', 10, [a, b], [c]);
    await stillFlowing(streams, atStop, 'while srvlink dns is down');

    dns = await startDns(etcd, listen);
    await proc.waitForLog(recovered);
    const from = proc.logs.length;
    await putBackend(etcd, c);
    await deleteBackend(etcd, a);
    await deleteBackend(etcd, b);
    await setChangedTo(proc, from, 1);
    await connectionsGoTo(address, ledger, 'new set', 10, [c], [a, b]);
    const atRestart = streams.map((s) => s.received);
    await stillFlowing(streams, atRestart, 'after srvlink dns is back');
    await Promise.all(streams.map((s) => s.finish()));
    expect(proc.child.exitCode).toBeNull();
    summarize('srvlink-dns', ledger, '8 streams through the outage, 10 new connections on the last good set, 10 on the set changed in etcd after');
  });

  it('etcd: srvlink dns and srvlink run --discovery etcd serve their last records through the outage and follow etcd once it is back', async () => {
    const { a, b, c } = await startBackends();
    const etcd = await startEtcd();
    const member = etcd.members[0];
    if (member === undefined) throw new Error('no etcd member');
    await putBackend(etcd, a);
    await putBackend(etcd, b);
    const listen = { host: '127.0.0.1', port: await freeRestartPort() };
    const dns = await startDns(etcd, listen);
    const viaDns = await startRun(['--discovery', 'dns', '--cluster-dns', `${listen.host}:${listen.port}`]);
    const viaEtcd = await startRun(['--discovery', 'etcd', '--etcd', etcd.endpoints.join(',')]);
    const runs = [
      { label: 'via srvlink dns', ...viaDns },
      { label: 'etcd discovery', ...viaEtcd },
    ];
    const ledger = new Ledger();
    const streams = await Promise.all(runs.map((run) => establish(run.address, ledger, run.label, 4)));
    const all = streams.flat();

    const endpoint = member.endpoint;
    await member.stop();
    const lost = (l: { msg: string }): boolean => l.msg === 'lost etcd, serving the last loaded records';
    await Promise.all([dns.waitForLog(lost), viaEtcd.proc.waitForLog(lost)]);
    // dig, a client we did not write: srvlink dns answers the set it had.
    expect((await dig(listen, SRV, 'SRV')).answer.map((r) => r.data.split(' ')[2]).sort()).toEqual([a.address.port, b.address.port].map(String).sort());
    const atStop = all.map((s) => s.received);
    for (const run of runs) await connectionsGoTo(run.address, ledger, `${run.label} outage`, 6, [a, b], [c]);
    await stillFlowing(all, atStop, 'while etcd is down');

    await member.start();
    expect(member.endpoint, 'etcd back on its port (it was taken while it was down)').toBe(endpoint);
    const resynced = (l: { msg: string }): boolean => l.msg === 'etcd zone resynced';
    await Promise.all([dns.waitForLog(resynced, 30_000), viaEtcd.proc.waitForLog(resynced, 30_000)]);
    const from = runs.map((run) => run.proc.logs.length);
    await putBackend(etcd, c);
    await deleteBackend(etcd, a);
    await deleteBackend(etcd, b);
    await Promise.all(runs.map((run, i) => setChangedTo(run.proc, from[i] ?? 0, 1)));
    for (const run of runs) await connectionsGoTo(run.address, ledger, `${run.label} new set`, 6, [c], [a, b]);
    const atRestart = all.map((s) => s.received);
    await stillFlowing(all, atRestart, 'after etcd is back');
    await Promise.all(all.map((s) => s.finish()));
    for (const run of runs) expect(run.proc.child.exitCode).toBeNull();
    summarize('etcd', ledger, 'srvlink dns and etcd discovery: 4 streams each through the outage, 6 new connections each on the last records, 6 each on the set changed after');
  });
});
