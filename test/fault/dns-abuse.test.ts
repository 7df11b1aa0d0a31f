/**
 * DNS abuse against both DNS servers srvlink runs, as processes: `srvlink
 * dns` and the stub of `srvlink run` (forwarding the cluster domain to that
 * server). After each scenario the process is alive, answers a correct query
 * (dig, a client we did not write) and its memory is bounded. Each prints one
 * summary line: the connections it opened and dig's exchanges after it, the
 * bytes of the answers dig checked, and those lost (no answer, or a wrong
 * one). The random-packet flood at larger scale is test/stub/stub-fuzz.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort, type HostPort } from '../../src/core/host-port.js';
import { createMessage, encodeMessage } from '../../src/dns/codec.js';
import { frameMessage } from '../../src/dns/tcp-framing.js';
import { dig, type DigResult } from '../helpers/dig.js';
import { rss } from '../helpers/proc-stats.js';
import { reportScenario } from '../helpers/scenario-summary.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';

const BIG = '_big._tcp.env1.skydns.local';

interface Target {
  name: string;
  proc: SrvlinkProcess;
  address: HostPort;
}

async function startTargets(): Promise<Target[]> {
  const file = join(tempDir(), 'records.yaml');
  writeFileSync(file, Array.from({ length: 1500 }, (_, i) => `/skydns/local/skydns/env1/_tcp/_big/i${i}: {host: 10.3.${i >> 8}.${i & 0xff}, port: ${20000 + i}}`).join('\n'));
  const dns = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--records', file]);
  const dnsAddress = parseHostPort(String((await dns.waitForLog((l) => l.msg === 'dns server listening')).address), 'address');
  const run = spawnSrvlink([
    'run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=zookeeper', '--backend', 'zookeeper=127.0.0.1:1',
    '--dns-listen', '127.0.0.1:0', '--cluster-dns', `127.0.0.1:${dnsAddress.port}`, '--upstream', `127.0.0.1:${dnsAddress.port}`,
  ]);
  const stubAddress = parseHostPort(String((await run.waitForLog((l) => l.msg === 'dns stub listening')).address), 'address');
  return [
    { name: 'srvlink dns', proc: dns, address: dnsAddress },
    { name: 'stub', proc: run, address: stubAddress },
  ];
}

/** The size of the reply dig read (its `;; MSG SIZE  rcvd: N` line). */
function replySize(answer: DigResult): number {
  return Number(/MSG SIZE\s+rcvd: (\d+)/.exec(answer.raw)?.[1] ?? 0);
}

/** dig's exchanges after a part: how many, the bytes of the correct answers, and what went wrong with the others. */
interface Checked {
  exchanges: number;
  bytes: number;
  problems: string[];
}

/** Ask for `name` (A) and expect `address` alone: a correct answer counts its bytes, anything else is a problem. */
async function checkAnswer(target: Target, name: string, address: string, extra: string[], checked: Checked): Promise<void> {
  checked.exchanges++;
  const answer = await dig(target.address, name, 'A', extra).catch((err: unknown) => String(err));
  if (typeof answer === 'string') checked.problems.push(`${name} ${extra.join(' ')}: ${answer}`);
  else if (answer.answer.length !== 1 || answer.answer[0]?.data !== address) checked.problems.push(`${name} ${extra.join(' ')}: ${JSON.stringify(answer.answer)}`);
  else checked.bytes += replySize(answer);
}

/** Alive, memory within `baseline` + 128 MiB; then a correct query over UDP and one over TCP, checked. */
async function checkHealthy(target: Target, baseline: number): Promise<Checked> {
  expect(target.proc.child.exitCode).toBeNull();
  const checked: Checked = { exchanges: 0, bytes: 0, problems: [] };
  await checkAnswer(target, 'i1._big._tcp.env1.skydns.local', '10.3.0.1', [], checked);
  await checkAnswer(target, 'i2._big._tcp.env1.skydns.local', '10.3.0.2', ['+tcp'], checked);
  expect(rss(target.proc.child.pid as number) - baseline).toBeLessThan(128 * 2 ** 20);
  return checked;
}

/** Print the part's summary line, then fail on any loss. */
function report(scenario: string, connections: number, checked: Checked, extra: string, verifiedBefore = 0): void {
  const summary = reportScenario({ scenario, connections: connections + checked.exchanges, bytesVerified: verifiedBefore + checked.bytes, lost: checked.problems.length, extra });
  expect(checked.problems).toEqual([]);
  expect(summary.lost).toBe(0);
}

async function tcp(address: HostPort): Promise<Socket> {
  const socket = connect({ host: address.host, port: address.port });
  socket.on('error', () => undefined);
  onTestFinished(() => void socket.destroy());
  await once(socket, 'connect');
  return socket;
}

describe('dns abuse against srvlink dns and the stub', () => {
  it('random and mutated packets, huge length prefixes, half-open connections, never-reading clients, answers over 64 KiB', async () => {
    const targets = await startTargets();
    const valid = encodeMessage(createMessage({ id: 1, flags: { rd: true }, questions: [{ name: 'i1._big._tcp.env1.skydns.local', type: 'A' }] }));
    const packets = fc.sample(
      fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 512 }).map((b) => Buffer.from(b)),
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((edits) => {
          const copy = Buffer.from(valid);
          for (const [at, value] of edits) copy[at] = value;
          return copy;
        }),
      ),
      { numRuns: 3000, seed: 8 },
    );
    for (const target of targets) {
      const pid = target.proc.child.pid as number;
      expect((await checkHealthy(target, rss(pid))).problems).toEqual([]);
      const baseline = rss(pid);

      // Random and mutated packets over UDP, then framed over TCP.
      const udp = createSocket('udp4');
      udp.bind(0, '127.0.0.1');
      await once(udp, 'listening');
      let udpAnswers = 0;
      udp.on('message', () => (udpAnswers += 1));
      for (const packet of packets) udp.send(packet, target.address.port, target.address.host);
      const stream = await tcp(target.address);
      let tcpBytes = 0;
      stream.on('data', (chunk: Buffer) => (tcpBytes += chunk.length));
      stream.write(Buffer.concat(packets.map((p) => frameMessage(p))));
      let checked = await checkHealthy(target, baseline);
      udp.close();
      report(`dns-abuse random-packets (${target.name})`, 1, checked, `${packets.length * 2} packets, ${udpAnswers} answered over udp, ${tcpBytes} bytes over tcp, 0 crashes`);

      // Huge length prefixes: a frame of 65,535 announced, a few bytes sent, on 50 connections.
      const huge = await Promise.all(Array.from({ length: 50 }, () => tcp(target.address)));
      for (const socket of huge) socket.write(Buffer.from([0xff, 0xff, 1, 2, 3]));
      checked = await checkHealthy(target, baseline);
      report(`dns-abuse huge-length-prefix (${target.name})`, huge.length, checked, `${huge.length} frames of 65535 bytes announced, 0 answered, 0 crashes`);
      for (const socket of huge) socket.destroy();

      // Half-open connections: 2,000 connected, nothing sent (past 256 the oldest idle ones make room).
      const halfOpen: Socket[] = [];
      for (let i = 0; i < 2000; i++) halfOpen.push(await tcp(target.address));
      checked = await checkHealthy(target, baseline);
      const closedByServer = halfOpen.filter((s) => s.destroyed || s.readableEnded).length;
      report(`dns-abuse half-open (${target.name})`, halfOpen.length, checked, `${closedByServer} closed by the server so far, 0 crashes`);
      for (const socket of halfOpen) socket.destroy();

      // A pipelining client that never reads, asking for the 64 KiB answer.
      const greedy = await tcp(target.address);
      greedy.pause();
      const big = frameMessage(encodeMessage(createMessage({ id: 2, questions: [{ name: BIG, type: 'SRV' }] })));
      let written = 0;
      for (let i = 0; i < 2000 && greedy.write(big); i++) written++;
      checked = await checkHealthy(target, baseline);
      report(`dns-abuse never-reading (${target.name})`, 1, checked, `${written} queries written, 0 crashes`);
      greedy.destroy();

      // Answers over 64 KiB uncompressed: dig over UDP (truncated) then TCP.
      const answer = await dig(target.address, BIG, 'SRV', ['+tcp', '+ignore']);
      expect(answer.status).toBe('NOERROR');
      expect(answer.answer.length).toBeGreaterThan(1000);
      checked = await checkHealthy(target, baseline);
      report(`dns-abuse large-answer (${target.name})`, 1, checked, `${answer.answer.length} records in one answer over tcp, 0 crashes`, replySize(answer));
      expect(target.proc.logs.filter((l) => l.level === 'error' || l.level === 'raw')).toEqual([]);
    }
  }, 120_000);
});
