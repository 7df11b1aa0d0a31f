/**
 * Hostile SkyDNS data in a real etcd, read by real `srvlink dns --etcd` and
 * `srvlink run --discovery etcd` processes: huge values, deep keys, keys and
 * values that are not UTF-8, ports out of range or not integers, IP literals
 * in odd forms, invalid JSON, and one service of 10,000 instances. Neither
 * process crashes; dig gets exactly the valid records; the bad ones are
 * skipped and counted; connections through `run` reach only valid backends,
 * every byte echoed intact; the set-change log line stays short. One summary
 * line per process.
 */
import { Etcd3, type IRequestOp } from 'etcd3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { formatHostPort, parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { patternAt } from '../helpers/byte-stream.js';
import { dig, type DigResult } from '../helpers/dig.js';
import { reportScenario } from '../helpers/scenario-summary.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { connectTcp, readBytes, readLine, startNamedBackend, type TcpBackend } from '../helpers/tcp-backends.js';
import { waitFor } from '../helpers/wait-for.js';

const DOMAIN = 'env1.skydns.local';
const WEB = `_web._tcp.${DOMAIN}`;
const WEB_KEY = '/skydns/local/skydns/env1/_tcp/_web';
const BIG = `_big._tcp.${DOMAIN}`;
const BIG_KEY = '/skydns/local/skydns/env1/_tcp/_big';
const INSTANCES = 10_000;
const MIB = 2 ** 20;
/** 100 levels below the service: 1-letter labels still make a name of 229 octets (valid), 2-letter ones do not (malformed). */
const DEEP_VALID = Array.from({ length: 100 }, () => 'a').join('/');
const DEEP_INVALID = Array.from({ length: 100 }, () => 'ab').join('/');

/** The valid records of `_web`, each to its own named backend (odd but valid forms among them). */
function validWeb(ports: Record<string, number>): [string, string][] {
  return [
    [`${WEB_KEY}/web1`, JSON.stringify({ host: '127.0.0.1', port: ports.web1 })],
    // IPv4-mapped IPv6: an A record for 127.0.0.1 (Go's To4, as CoreDNS).
    [`${WEB_KEY}/web2`, JSON.stringify({ host: '::ffff:127.0.0.1', port: ports.web2 })],
    // A 1 MiB value, valid: unknown fields are ignored (Go's encoding/json).
    [`${WEB_KEY}/web3`, JSON.stringify({ host: '127.0.0.1', port: ports.web3, junk: 'j'.repeat(MIB) })],
    [`${WEB_KEY}/${DEEP_VALID}`, JSON.stringify({ host: '127.0.0.1', port: ports.deep })],
  ];
}

/** Values no reader may serve, under `_web` beside the valid ones: key bytes, value bytes. */
function hostileWeb(): [Buffer, Buffer][] {
  const text = (key: string, value: string): [Buffer, Buffer] => [Buffer.from(key), Buffer.from(value)];
  const record = (name: string, fields: Record<string, unknown>): [Buffer, Buffer] => text(`${WEB_KEY}/${name}`, JSON.stringify(fields));
  return [
    // Huge: 1 MiB that is not JSON, a 1 MiB host, 1 MiB of nested arrays.
    text(`${WEB_KEY}/huge-garbage`, `{${'x'.repeat(MIB)}`),
    record('huge-host', { host: 'h'.repeat(MIB), port: 80 }),
    text(`${WEB_KEY}/huge-nesting`, `${'['.repeat(MIB / 2)}${']'.repeat(MIB / 2)}`),
    text(`${WEB_KEY}/${DEEP_INVALID}`, JSON.stringify({ host: '127.0.0.1', port: 80 })),
    // Not UTF-8: the key, the value.
    [Buffer.concat([Buffer.from(`${WEB_KEY}/bad-`), Buffer.from([0xff, 0xfe])]), Buffer.from(JSON.stringify({ host: '127.0.0.1', port: 80 }))],
    [Buffer.from(`${WEB_KEY}/bad-value`), Buffer.concat([Buffer.from('{"host":"127.0.0.1","port":80,"text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])],
    // Ports.
    record('port-negative', { host: '127.0.0.1', port: -1 }),
    record('port-huge', { host: '127.0.0.1', port: 65536 }),
    record('port-fraction', { host: '127.0.0.1', port: 80.5 }),
    record('port-string', { host: '127.0.0.1', port: '80' }),
    text(`${WEB_KEY}/port-exponent`, '{"host":"127.0.0.1","port":1e300}'),
    // IP literals in odd forms: inet_aton would take several of them, a DNS answer cannot.
    ...['0x7f.1', '127.1', '127.000.000.001', '0177.0.0.1', '1.2.3.4.5', '256.1.1.1', '[::1]', 'fe80::1%lo', '127.0.0.1:80'].map((host, i) =>
      record(`odd-ip-${i}`, { host, port: 80 }),
    ),
    // Not a JSON object.
    ...['{"host":', '[]', 'null', '"127.0.0.1"', '{"host":"127.0.0.1","port":80', '', '{"host":"127.0.0.1","port":80}}'].map((value, i) => text(`${WEB_KEY}/json-${i}`, value)),
  ];
}

/** etcd's defaults: operations in one transaction (--max-txn-ops), and bytes a request may carry (--max-request-bytes, 1.5 MiB) less room for the framing. */
const TXN_OPS = 128;
const TXN_BYTES = MIB;

/**
 * Put key/value pairs (keys and values as bytes), as few requests as etcd
 * takes: transactions of up to TXN_OPS puts and TXN_BYTES, all at once, a
 * value too big to share one alone. One request, one raft entry, for 128
 * keys: 10,000 single puts took most of the scenario's time.
 */
async function putAll(etcd: Etcd3, entries: readonly (readonly [string | Buffer, string | Buffer])[]): Promise<void> {
  const txns: IRequestOp[][] = [];
  let ops: IRequestOp[] = [];
  let bytes = 0;
  for (const [key, value] of entries) {
    const put = { key: Buffer.from(key), value: Buffer.from(value) };
    const size = put.key.length + put.value.length;
    if (ops.length === TXN_OPS || (ops.length > 0 && bytes + size > TXN_BYTES)) {
      txns.push(ops);
      ops = [];
      bytes = 0;
    }
    ops.push({ request_put: put });
    bytes += size;
  }
  if (ops.length > 0) txns.push(ops);
  await Promise.all(txns.map((success) => etcd.kv.txn({ success })));
}

function client(cluster: EtcdCluster): Etcd3 {
  const etcd = new Etcd3({ hosts: cluster.endpoints, grpcOptions: { 'grpc.max_receive_message_length': 64 * MIB, 'grpc.max_send_message_length': 64 * MIB } });
  onTestFinished(() => etcd.close());
  return etcd;
}

/** The size of the reply dig read (its `;; MSG SIZE  rcvd: N` line). */
function replySize(answer: DigResult): number {
  return Number(/MSG SIZE\s+rcvd: (\d+)/.exec(answer.raw)?.[1] ?? 0);
}

const noErrors = (proc: SrvlinkProcess): unknown[] => proc.logs.filter((l) => l.level === 'error' || l.level === 'raw');

async function fetchMetric(admin: HostPort, name: string): Promise<number> {
  const text = await (await fetch(`http://${formatHostPort(admin)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return Number(line?.split(' ').at(-1));
}

describe('hostile etcd data', () => {
  it('srvlink dns and srvlink run --discovery etcd serve the valid records, skip and count the rest, and never crash', async () => {
    const cluster = await startEtcd();
    const etcd = client(cluster);
    const backends: Record<string, TcpBackend> = {};
    for (const name of ['web1', 'web2', 'web3', 'deep', 'big']) backends[name] = await startNamedBackend(name);
    const ports = Object.fromEntries(Object.entries(backends).map(([name, b]) => [name, b.address.port]));
    const hostile = hostileWeb();
    const big = Array.from({ length: INSTANCES }, (_, i) => [`${BIG_KEY}/i${i}`, JSON.stringify({ host: '127.0.0.1', port: ports.big, weight: 1 + (i % 100) })] as const);
    await putAll(etcd, [...validWeb(ports), ...hostile, ...big]);
    const bad = hostile.length;

    // srvlink dns --etcd, asked with dig.
    const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--etcd', cluster.endpoints.join(','), '--admin', '127.0.0.1:0']);
    const dnsAddress = parseHostPort(String((await dns.waitForLog((l) => l.msg === 'dns server listening')).address), 'address');
    const admin = parseHostPort(String((await dns.waitForLog((l) => l.msg === 'admin endpoint listening')).address), 'address');
    expect(await dns.waitForLog((l) => l.msg === 'etcd zone loaded')).toMatchObject({ records: 4 + INSTANCES, malformed: bad });
    expect(dns.logs.filter((l) => l.msg === 'skipping malformed skydns record')).toHaveLength(bad);
    expect(await fetchMetric(admin, 'srvlink_etcd_malformed_values')).toBe(bad);

    const web = await dig(dnsAddress, WEB, 'SRV');
    expect(web.status).toBe('NOERROR');
    expect(web.answer.map((r) => r.data).sort()).toEqual(
      [
        `10 25 ${ports.web1} web1.${WEB}.`,
        `10 25 ${ports.web2} web2.${WEB}.`,
        `10 25 ${ports.web3} web3.${WEB}.`,
        `10 25 ${ports.deep} ${DEEP_VALID.split('/').join('.')}.${WEB}.`,
      ].sort(),
    );
    expect(web.additional.map((r) => `${r.name} ${r.type} ${r.data}`)).toContain(`web2.${WEB}. A 127.0.0.1`);
    const oddIp = await dig(dnsAddress, `odd-ip-1.${WEB}`, 'A');
    expect(oddIp.status).toBe('NXDOMAIN');
    // 10,000 SRV records do not fit one message: UDP truncates, TCP carries as many whole records as fit.
    const udp = await dig(dnsAddress, BIG, 'SRV', ['+ignore']);
    expect(udp.flags).toContain('tc');
    const tcp = await dig(dnsAddress, BIG, 'SRV', ['+tcp']);
    expect(tcp.status).toBe('NOERROR');
    expect(tcp.answer.length).toBeGreaterThan(1000);
    expect(tcp.answer.every((r) => new RegExp(`^\\d+ \\d+ ${ports.big} i\\d+\\.${BIG.replace(/\./g, '\\.')}\\.$`).test(r.data))).toBe(true);
    expect(dns.child.exitCode).toBeNull();
    expect(noErrors(dns)).toEqual([]);
    // Every answer above was checked: the four exchanges are dig's, their bytes its replies'.
    const dnsSummary = reportScenario({
      scenario: 'hostile-etcd (srvlink dns)',
      connections: 4,
      bytesVerified: [web, oddIp, udp, tcp].reduce((sum, answer) => sum + replySize(answer), 0),
      lost: 0,
      extra: `${4 + INSTANCES + bad} keys, ${bad} skipped and counted, 4 of 4 valid web records answered, ${tcp.answer.length} of ${INSTANCES} big records in one TCP answer, 0 crashes`,
    });
    expect(dnsSummary.lost).toBe(0);

    // srvlink run --discovery etcd: connections reach only valid backends, bytes intact.
    const run = spawnSrvlink([
      'run', '--dns-listen', 'none', '--domain', DOMAIN, '--discovery', 'etcd', '--etcd', cluster.endpoints.join(','),
      '--map', '127.0.0.1:0=web', '--map', '127.0.0.1:0=big', '--connect-timeout', '1s',
    ]);
    const listening = (service: string): Promise<HostPort> =>
      run.waitForLog((l) => l.msg === 'listening' && l.service === service).then((l) => parseHostPort(String(l.address), 'address'));
    const webAddress = await listening('web');
    const bigAddress = await listening('big');
    expect(await run.waitForLog((l) => l.msg === 'etcd zone loaded')).toMatchObject({ records: 4 + INSTANCES, malformed: bad });
    const bigSet = await run.waitForLog((l) => l.msg === 'backend set changed' && l.backends === INSTANCES);
    expect(bigSet).toMatchObject({ added: INSTANCES, removed: 0, changed: 0 });
    expect(JSON.stringify(bigSet).length).toBeLessThan(4096);

    const seen = new Set<string>();
    let webConnections = 0;
    await waitFor(
      async () => {
        const socket = await connectTcp(webAddress);
        seen.add(await readLine(socket));
        socket.destroy();
        webConnections++;
        return seen.size === 4;
      },
      { what: 'every valid web backend to answer', timeout: 60_000, interval: 0 },
    );
    expect([...seen].sort()).toEqual(['deep', 'web1', 'web2', 'web3']);

    // 200 connections to the service of 10,000 instances, 20 at a time, 65,521 bytes echoed on each.
    let verified = 0;
    let lost = 0;
    const connections = 200;
    for (let batch = 0; batch < connections / 20; batch++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const socket = await connectTcp(bigAddress);
          expect(await readLine(socket)).toBe('big');
          const payload = patternAt(batch * 20 + i, 65_521);
          socket.write(payload);
          const echoed = await readBytes(socket, payload.length);
          if (echoed.equals(payload)) verified += echoed.length;
          else lost += payload.length;
          socket.destroy();
        }),
      );
    }
    expect(lost).toBe(0);

    // Through the watch: a new weight is one changed backend; more hostile data is skipped and counted.
    const logged = run.logs.length;
    // SRV weights are shares of 100 (CoreDNS): among 10,000 others each one is 1; 65535 makes i5's visible.
    await etcd.put(`${BIG_KEY}/i5`).value(JSON.stringify({ host: '127.0.0.1', port: ports.big, weight: 65_535 })).exec();
    const total = big.reduce((sum, [, value]) => sum + (JSON.parse(value) as { weight: number }).weight, 0) - 6 + 65_535;
    const share = Math.floor((100 * 65_535) / total);
    const change = await run.waitForLog((l) => run.logs.indexOf(l) >= logged && l.msg === 'backend set changed');
    expect(change).toMatchObject({
      backends: INSTANCES,
      added: 0,
      removed: 0,
      changed: 1,
      changedBackends: [`i5.${BIG} 127.0.0.1:${ports.big} p10 w1 → 127.0.0.1:${ports.big} p10 w${share}`],
    });
    await putAll(etcd, [[Buffer.from([...Buffer.from(`${WEB_KEY}/late-`), 0xc0]), '{}'], [`${WEB_KEY}/late-huge`, `[${'1,'.repeat(MIB / 2)}`]]);
    await waitFor(() => run.logs.filter((l) => l.msg === 'skipping malformed skydns record').length === bad + 2, { what: 'the late hostile keys to be skipped' });
    await waitFor(() => dns.logs.filter((l) => l.msg === 'skipping malformed skydns record').length === bad + 2, { what: 'srvlink dns to skip them too' });
    expect(await fetchMetric(admin, 'srvlink_etcd_malformed_values')).toBe(bad + 2);
    expect((await dig(dnsAddress, WEB, 'SRV')).answer).toHaveLength(4);
    expect(await readLine(await connectTcp(webAddress))).toMatch(/^(web1|web2|web3|deep)$/);

    expect(run.child.exitCode).toBeNull();
    expect(dns.child.exitCode).toBeNull();
    expect(noErrors(run)).toEqual([]);
    const runSummary = reportScenario({
      scenario: 'hostile-etcd (srvlink run --discovery etcd)',
      connections: webConnections + connections + 1,
      bytesVerified: verified,
      lost,
      extra: `${bad + 2} hostile keys skipped and counted, a set of ${INSTANCES} backends logged in ${JSON.stringify(bigSet).length} bytes`,
    });
    expect(runSummary.lost).toBe(0);
  }, 150_000);
});
