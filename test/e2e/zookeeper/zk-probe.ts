import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';
import type { Namespace, NamespaceChild } from '../../helpers/netns.js';
import { JVM_FLAGS, ZOOKEEPER_TIMEOUT, zookeeperClassPath } from '../../helpers/zookeeper.js';

const SOURCE = fileURLToPath(new URL('./ZkProbe.java', import.meta.url));

/** What `report ID` says about one session of the probe. */
export interface SessionReport {
  id: string;
  sid: string;
  /** The session id the session was first given. */
  first: string;
  connected: boolean;
  expired: boolean;
  ok: number;
  failed: number;
  disconnects: number;
  okSinceReconnect: number;
  maxGapMs: number;
  /** KeeperException codes other than a connection loss, `;`-separated. */
  errors: string;
}

/** ZkProbe.java (the stock Java client) running inside a namespace, driven line by line. */
export interface ZkProbe {
  /** Send one command; resolves with the first later output line matching `answer`. */
  ask(command: string, answer: RegExp): Promise<string>;
  /** Open session ID; resolves with its session id (`0x...`). */
  open(id: string): Promise<string>;
  report(id: string): Promise<SessionReport>;
  /** Every line it printed so far. */
  lines(): string[];
}

/**
 * Start the probe with the JDK's source launcher against `connect`
 * (e.g. `localhost:2181`); killed when the test ends.
 */
export async function startZkProbe(ns: Namespace, connect: string, sessionTimeout: number): Promise<ZkProbe> {
  const child: NamespaceChild = ns.spawn(
    'java',
    [...JVM_FLAGS, '-Dzookeeper.sasl.client=false', '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn', '-cp', zookeeperClassPath(), SOURCE, connect, String(sessionTimeout)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await child.exited;
  });
  const seen: string[] = [];
  const waiters: { from: number; answer: RegExp; resolve: (line: string) => void }[] = [];
  let stderr = '';
  let rest = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  child.stdout?.on('data', (chunk: Buffer) => {
    rest += chunk.toString();
    let newline: number;
    while ((newline = rest.indexOf('\n')) !== -1) {
      const line = rest.slice(0, newline);
      rest = rest.slice(newline + 1);
      seen.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.answer.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  const next = (answer: RegExp, what: string, from = seen.length): Promise<string> => {
    const already = seen.slice(from).find((line) => answer.test(line));
    if (already !== undefined) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ZkProbe: no line matching ${answer} after "${what}" within ${ZOOKEEPER_TIMEOUT} ms; output:\n${seen.join('\n')}\nstderr:\n${stderr}`)), ZOOKEEPER_TIMEOUT);
      void child.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`ZkProbe exited with ${code} waiting for ${answer} after "${what}"; output:\n${seen.join('\n')}\nstderr:\n${stderr}`));
      });
      waiters.push({ from, answer, resolve: (line) => (clearTimeout(timer), resolve(line)) });
    });
  };
  await next(/^ready$/, 'start', 0);
  const ask = (command: string, answer: RegExp): Promise<string> => {
    const from = seen.length;
    child.stdin?.write(`${command}\n`);
    return next(new RegExp(`${answer.source}|^error `), command, from).then((line) => {
      if (line.startsWith('error ')) throw new Error(`ZkProbe: ${line}`);
      return line;
    });
  };
  return {
    ask,
    open: async (id) => (await ask(`open ${id}`, new RegExp(`^session ${id} `))).split(' ')[2] as string,
    report: async (id) => parseReport(await ask(`report ${id}`, new RegExp(`^report ${id} `))),
    lines: () => [...seen],
  };
}

function parseReport(line: string): SessionReport {
  const fields = Object.fromEntries(
    line
      .split(' ')
      .slice(2)
      .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  ) as Record<string, string>;
  return {
    id: line.split(' ')[1] as string,
    sid: fields.sid ?? '',
    first: fields.first ?? '',
    connected: fields.connected === 'true',
    expired: fields.expired === 'true',
    ok: Number(fields.ok),
    failed: Number(fields.failed),
    disconnects: Number(fields.disconnects),
    okSinceReconnect: Number(fields.okSinceReconnect),
    maxGapMs: Number(fields.maxGapMs),
    errors: fields.errors ?? '',
  };
}
