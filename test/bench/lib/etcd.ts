import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from './bench-section.js';
import { freePort } from './free-port.js';
import type { OwnedProcess } from './process-group.js';

export interface RunningEtcd {
  readonly process: OwnedProcess;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Put `key` = `value` through the JSON gateway (no client library, no process per put). */
  put(key: string, value: string): Promise<void>;
  del(key: string): Promise<void>;
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** One etcd member (Debian's etcd-server) on free loopback ports with a data dir in the section's scratch directory. */
export async function startEtcd(context: BenchContext): Promise<RunningEtcd> {
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const client = await freePort();
    const peer = await freePort();
    const url = `http://127.0.0.1:${client}`;
    const process = context.processes.spawn('etcd', 'etcd', [
      '--name=bench',
      `--data-dir=${join(context.work, `etcd-${client}`)}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=bench=http://127.0.0.1:${peer}`,
      '--log-level=error',
    ]);
    let dead = false;
    void process.exited.then(() => (dead = true));
    const deadline = Date.now() + 30_000;
    while (!dead && Date.now() < deadline) {
      try {
        if ((await fetch(`${url}/version`, { signal: AbortSignal.timeout(1000) })).ok) {
          const call = async (path: string, body: unknown): Promise<void> => {
            const response = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body) });
            if (!response.ok) throw new Error(`etcd ${path} answered ${response.status}: ${await response.text()}`);
          };
          return {
            process,
            url,
            put: (key, value) => call('/v3/kv/put', { key: b64(key), value: b64(value) }),
            del: (key) => call('/v3/kv/deleterange', { key: b64(key) }),
          };
        }
      } catch {
        // Not serving yet.
      }
      await sleep(50);
    }
    last = new Error(`etcd did not serve on ${url}: ${process.tail(5)}`);
    await process.stop();
  }
  throw last;
}
