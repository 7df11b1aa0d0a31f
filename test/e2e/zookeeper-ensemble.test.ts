/**
 * The scenario srvlink was made for, from real parts in one "container"
 * (a private network namespace, so the client's port is 2181 as in
 * production): a 3-server ZooKeeper ensemble (Debian's zookeeperd) on dynamic
 * ports, each server registered in etcd by `srvlink register --check
 * zookeeper://...`; `srvlink dns --etcd` serving the SkyDNS layout;
 * `srvlink run --map 2181=zookeeper` pointed at it; the stock Java client
 * (ZkProbe.java) knowing only localhost:2181. Then servers fail the three
 * ways a check must see: killed, frozen (SIGSTOP) and up without a quorum.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startEtcd } from '../helpers/etcd.js';
import { NETNS_UNAVAILABLE, createNamespace, type Namespace, type NamespaceChild } from '../helpers/netns.js';
import type { LogLine } from '../helpers/log-line.js';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { waitFor } from '../helpers/wait-for.js';
import { startZooKeeper, waitForQuorum, ZOOKEEPER_TIMEOUT, zookeeperClassPath, type ZooKeeperServer } from '../helpers/zookeeper.js';
import { startZkProbe, type SessionReport } from './zookeeper/zk-probe.js';

const DOMAIN = 'env1.skydns.local';
const KEYS = '/skydns/local/skydns/env1/_tcp/_zookeeper/';
/** The check's timing: a frozen server is gone within INTERVAL × FALL + TIMEOUT of its last good answer. */
const CHECK = { interval: 500, timeout: 400, fall: 2, rise: 2 };
const REMOVAL_BOUND = CHECK.interval * CHECK.fall + CHECK.timeout;
/** Room for scheduling on a loaded machine and for the delete to reach the watcher (a bound, not a speed claim). */
const SLACK = 2500;
const SESSION_TIMEOUT = 8000;

const SKIP =
  NETNS_UNAVAILABLE ??
  (!zookeeperClassPath().includes('zookeeper.jar') ? 'Debian zookeeperd is not installed' : !existsSync('/usr/bin/javac') ? 'javac (default-jdk-headless) is not installed' : undefined);

/** `etcdctl watch --prefix KEYS` inside the namespace: every PUT and DELETE, with the time it arrived. */
function watchKeys(ns: Namespace, endpoint: string): { events: { type: 'PUT' | 'DELETE'; key: string; at: number }[]; next(type: 'PUT' | 'DELETE', key: string, from: number): Promise<number> } {
  const child: NamespaceChild = ns.spawn('etcdctl', [`--endpoints=${endpoint}`, 'watch', '--prefix', KEYS], { env: { ...process.env, ETCDCTL_API: '3' } });
  const events: { type: 'PUT' | 'DELETE'; key: string; at: number }[] = [];
  let rest = '';
  let pending: 'PUT' | 'DELETE' | undefined;
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (chunk: Buffer) => {
    const at = performance.now();
    rest += chunk.toString();
    let newline: number;
    while ((newline = rest.indexOf('\n')) !== -1) {
      const line = rest.slice(0, newline);
      rest = rest.slice(newline + 1);
      if (line === 'PUT' || line === 'DELETE') pending = line;
      else if (pending !== undefined && line.startsWith(KEYS)) {
        events.push({ type: pending, key: line.slice(KEYS.length), at });
        pending = undefined;
        for (const wake of [...waiters]) wake();
      }
    }
  });
  return {
    events,
    next: (type, key, from) =>
      new Promise((resolve, reject) => {
        const look = (): boolean => {
          const event = events.find((e) => e.type === type && e.key === key && e.at >= from);
          if (event) resolve(event.at);
          return event !== undefined;
        };
        if (look()) return;
        const timer = setTimeout(() => (waiters.delete(wake), reject(new Error(`no ${type} of ${KEYS}${key} within ${ZOOKEEPER_TIMEOUT} ms; events: ${JSON.stringify(events)}`))), ZOOKEEPER_TIMEOUT);
        const wake = (): void => void (look() && (clearTimeout(timer), waiters.delete(wake)));
        waiters.add(wake);
      }),
  };
}

/** `srvlink register` for one server, with the zookeeper check, inside the namespace. */
function register(ns: Namespace, etcd: string, instance: string, port: number): SrvlinkProcess {
  return spawnSrvlink(
    [
      'register', '--etcd', etcd, '--domain', DOMAIN, '--service', 'zookeeper', '--host', '127.0.0.1', '--port', String(port), '--instance', instance, '--ttl', '5',
      '--check', `zookeeper://127.0.0.1:${port}`, '--check-interval', `${CHECK.interval}ms`, '--check-timeout', `${CHECK.timeout}ms`, '--fall', String(CHECK.fall), '--rise', String(CHECK.rise),
    ],
    { spawner: (command, args, env) => ns.spawn(command, args, { env }) },
  );
}

/** Which server a new connection to localhost:2181 reaches: `conf` through srvlink names the server's client port ('' when nothing answered). */
async function whichServerAnswers(ns: Namespace): Promise<string> {
  const result = await ns.exec('socat', ['-t', '3', '-T', '3', 'STDIO', 'TCP:localhost:2181'], { input: 'conf', timeout: 10_000 });
  return /^clientPort=(\d+)/m.exec(result.stdout)?.[1] ?? '';
}

/** The servers that hold session `sid` (`cons` lists each connection's sid). */
async function holders(servers: readonly ZooKeeperServer[], sid: string): Promise<ZooKeeperServer[]> {
  const cons = await Promise.all(servers.map((s) => (s.running ? s.fourLetter('cons') : Promise.resolve(''))));
  return servers.filter((_, i) => (cons[i] ?? '').includes(`sid=${sid},`) || (cons[i] ?? '').includes(`sid=${sid})`));
}

/** Whether a log line of srvlink run is the backend set losing the backend on `port`. */
function leavesSet(line: LogLine, port: number): boolean {
  return line.msg === 'backend set changed' && Array.isArray(line.removedBackends) && line.removedBackends.some((b) => String(b).includes(`:${port} `));
}

/** A check line of srvlink register saying the server is up without a quorum. */
function saysNoQuorum(line: LogLine): boolean {
  return (line.msg === 'health check failed' || line.msg === 'health check failing') && line.ok === false && line.reason === 'not serving requests (no quorum)';
}

/** Log lines after index `from` of srvlink run about dialing the backend on `port`. */
function dialsTo(lines: readonly LogLine[], from: number, port: number, msg: string): LogLine[] {
  return lines.slice(from).filter((l) => l.msg === msg && String(l.backend).endsWith(`:${port}`));
}

describe.skipIf(SKIP !== undefined)(`a ZooKeeper ensemble behind srvlink${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  it(
    'one connect string, localhost:2181: sessions survive a leader kill; killed, frozen and quorum-less servers leave etcd, and new connections avoid them',
    async () => {
      const ns = await createNamespace({ name: 'zk-e2e' });
      const [etcd, ensemble, [lonely]] = await Promise.all([
        startEtcd({ namespace: ns }),
        startZooKeeper({ servers: 3, namespace: ns }),
        // One member of an ensemble whose other member never starts: up, answering, never serving.
        // A stock configuration (no 4lw.commands.whitelist): ZooKeeper 3.8 answers srvr anyway.
        startZooKeeper({ servers: 1, absent: 1, namespace: ns, whitelist: null }),
      ]);
      if (!lonely || ensemble.length !== 3) throw new Error('servers missing');
      const endpoint = etcd.endpoints[0] as string;
      const watch = watchKeys(ns, endpoint);
      const instance = (s: ZooKeeperServer): string => `zk${s.id}`;

      const registrations = new Map(ensemble.map((s) => [s.id, register(ns, endpoint, instance(s), s.clientPort)]));
      const lonelyRegistration = register(ns, endpoint, 'zk-lonely', lonely.clientPort);
      const dns = spawnSrvlink(['dns', '--etcd', endpoint, '--listen', '127.0.0.1:53'], { spawner: (command, args, env) => ns.spawn(command, args, { env }) });
      await dns.waitForLog((l) => l.msg === 'dns server listening');
      let leader = await waitForQuorum(ensemble);
      const started = performance.now();
      await Promise.all(ensemble.map((s) => watch.next('PUT', instance(s), 0)));
      const registeredMs = performance.now() - started;

      const run = spawnSrvlink(
        ['run', '--domain', DOMAIN, '--cluster-dns', '127.0.0.1', '--dns-listen', 'none', '--map', '2181=zookeeper', '--ttl-max', '1s', '--connect-timeout', '1s', '--log-level', 'debug'],
        { spawner: (command, args, env) => ns.spawn(command, args, { env }) },
      );
      await run.waitForLog((l) => l.msg === 'srvlink run ready');
      expect(run.logs.find((l) => l.msg === 'listening')).toMatchObject({ backends: '3 backends' });

      // The stock Java client through localhost:2181 creates and reads a node.
      const probe = await startZkProbe(ns, 'localhost:2181', SESSION_TIMEOUT);
      await probe.open('main');
      await probe.ask('create main /srvlink-e2e through-srvlink', /^(created|exists) \/srvlink-e2e$/);
      expect(await probe.ask('read main /srvlink-e2e', /^read /)).toBe('read /srvlink-e2e through-srvlink');

      // Writers in sessions spread by srvlink over the servers, until one is on the leader and one elsewhere.
      const sessions: { id: string; sid: string; on: ZooKeeperServer }[] = [];
      for (let i = 0; !(sessions.some((s) => s.on === leader) && sessions.some((s) => s.on !== leader)); i++) {
        if (i === 30) throw new Error(`30 sessions and none on the leader (${leader.clientPort}) or none elsewhere: ${JSON.stringify(sessions)}`);
        const id = `w${i}`;
        const sid = await probe.open(id);
        let on: ZooKeeperServer[] = [];
        await waitFor(async () => (on = await holders(ensemble, sid)).length === 1, { what: `the server holding session ${sid}`, interval: 100 });
        sessions.push({ id, sid, on: on[0] as ZooKeeperServer });
        await probe.ask(`create ${id} /srvlink-e2e/${id} 0`, new RegExp(`^(created|exists) /srvlink-e2e/${id}$`));
        await probe.ask(`write ${id} /srvlink-e2e/${id}`, new RegExp(`^writing ${id}$`));
      }

      // The leader dies.
      const killedAt = performance.now();
      await leader.kill('SIGKILL');
      const leaderGoneMs = (await watch.next('DELETE', instance(leader), killedAt)) - killedAt;
      const onLeader = sessions.filter((s) => s.on === leader);
      const reports = new Map<string, SessionReport>();
      await waitFor(
        async () => {
          for (const s of sessions) reports.set(s.id, await probe.report(s.id));
          // Sessions of the dead server moved and write again.
          return onLeader.every((s) => {
            const r = reports.get(s.id);
            return r !== undefined && r.disconnects > 0 && r.connected && r.okSinceReconnect > 0;
          });
        },
        { what: 'the sessions of the killed leader to write again', timeout: ZOOKEEPER_TIMEOUT, interval: 200 },
      );
      for (const s of sessions) {
        const r = reports.get(s.id) as SessionReport;
        // The same session, never expired, only connection losses.
        expect(r).toMatchObject({ sid: s.sid, first: s.sid, expired: false, errors: '' });
        expect(r.failed).toBeLessThanOrEqual(r.disconnects + 1);
      }
      for (const s of onLeader) {
        const moved = await holders(ensemble, s.sid);
        expect(moved.length).toBe(1);
        expect(moved[0]).not.toBe(leader);
      }

      // New connections avoid the dead server: once srvlink run has the new set, it never dials it.
      const dropped = await run.waitForLog((l) => leavesSet(l, leader.clientPort));
      const afterLeaderLeft = run.logs.indexOf(dropped);
      const live = ensemble.filter((s) => s !== leader).map((s) => String(s.clientPort));
      const answeredBy: string[] = [];
      for (let i = 0; i < 12; i++) answeredBy.push(await whichServerAnswers(ns));
      expect(answeredBy.filter((port) => !live.includes(port))).toEqual([]);
      expect(dialsTo(run.logs, afterLeaderLeft, leader.clientPort, 'cannot dial backend')).toEqual([]);
      expect(dialsTo(run.logs, afterLeaderLeft, leader.clientPort, 'connection forwarded')).toEqual([]);
      const leaderReports = onLeader.map((s) => reports.get(s.id) as SessionReport);
      const allReports = sessions.map((s) => reports.get(s.id) as SessionReport);
      await probe.ask('quit', /^bye$/);

      // The old leader comes back: registered again once it serves.
      const restartedAt = performance.now();
      const killed = leader;
      killed.start();
      await watch.next('PUT', instance(killed), restartedAt);
      leader = await waitForQuorum(ensemble);

      // A follower freezes: the kernel still completes its handshakes, only the check's timeout sees it.
      const [frozen, other] = ensemble.filter((s) => s !== leader) as [ZooKeeperServer, ZooKeeperServer];
      const frozenAt = performance.now();
      await frozen.kill('SIGSTOP');
      const frozenGoneMs = (await watch.next('DELETE', instance(frozen), frozenAt)) - frozenAt;
      expect(frozenGoneMs).toBeLessThan(REMOVAL_BOUND + SLACK);
      const droppedFrozen = await run.waitForLog((l) => run.logs.indexOf(l) > afterLeaderLeft && leavesSet(l, frozen.clientPort));
      const afterFrozenLeft = run.logs.indexOf(droppedFrozen);
      const serving = [leader, other].map((s) => String(s.clientPort));
      const answeredAfterFreeze: string[] = [];
      for (let i = 0; i < 12; i++) answeredAfterFreeze.push(await whichServerAnswers(ns));
      // A connection sent to the frozen server would hang and answer nothing ('').
      expect(answeredAfterFreeze.filter((port) => !serving.includes(port)), JSON.stringify({ answeredAfterFreeze, serving, frozen: frozen.clientPort, logs: run.logs.slice(afterFrozenLeft) })).toEqual([]);
      expect(dialsTo(run.logs, afterFrozenLeft, frozen.clientPort, 'connection forwarded')).toEqual([]);
      const frozenLog = registrations.get(frozen.id)?.logs.find((l) => l.msg === 'health check failing');
      expect(frozenLog).toMatchObject({ ok: false, reason: `timed out after ${CHECK.timeout} ms waiting for the answer` });

      // The leader dies too: the last server is up but without a quorum, and leaves.
      const last = other;
      const quorumLostAt = performance.now();
      await leader.kill('SIGKILL');
      const quorumLostGoneMs = (await watch.next('DELETE', instance(last), quorumLostAt)) - quorumLostAt;
      await watch.next('DELETE', instance(leader), quorumLostAt);
      // Its check says why (a slow answer on a loaded machine may be logged first as a timeout).
      await registrations.get(last.id)?.waitForLog(saysNoQuorum);

      // The member that never had a quorum was checked all along and never registered.
      await lonelyRegistration.waitForLog(saysNoQuorum);
      expect(watch.events.filter((e) => e.key === 'zk-lonely')).toEqual([]);
      // Its stock configuration answers srvr, and only srvr.
      expect(await lonely.fourLetter('srvr')).toContain('not currently serving requests');
      expect(await lonely.fourLetter('cons')).toContain('is not executed because it is not in the whitelist');

      console.log(
        JSON.stringify({
          registeredMs: Math.round(registeredMs),
          leaderKilledKeyGoneMs: Math.round(leaderGoneMs),
          frozenKeyGoneMs: Math.round(frozenGoneMs),
          frozenBoundMs: REMOVAL_BOUND,
          quorumLostKeyGoneMs: Math.round(quorumLostGoneMs),
          sessions: allReports.length,
          sessionsOnLeader: leaderReports.length,
          failedWritesPerSession: allReports.map((r) => r.failed),
          disconnectsPerSession: allReports.map((r) => r.disconnects),
          maxWriteGapMsOnLeader: Math.max(...leaderReports.map((r) => r.maxGapMs)),
          maxWriteGapMs: Math.max(...allReports.map((r) => r.maxGapMs)),
        }),
      );
    },
    ZOOKEEPER_TIMEOUT * 4,
  );
});
