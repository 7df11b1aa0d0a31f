import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext } from './bench-section.js';
import { withFreePort } from './free-port.js';
import { listening } from './listening.js';
import type { OwnedProcess } from './process-group.js';

export interface RunningHaproxy {
  readonly process: OwnedProcess;
  readonly port: number;
}

/**
 * HAProxy in TCP mode on 127.0.0.1 in front of `backends` (round robin),
 * foreground, its default threads; `options` are extra `option` lines of
 * the defaults section (`splice-auto`, `splice-request`...).
 */
export async function startHaproxy(
  context: BenchContext,
  name: string,
  backends: readonly number[],
  options: readonly string[] = [],
  timeoutMs = 20_000,
): Promise<RunningHaproxy> {
  return withFreePort(async (port) => {
    const file = join(context.work, `${name.replace(/\W+/g, '-')}-${port}.cfg`);
    writeFileSync(
      file,
      [
        'global',
        // No maxconn: HAProxy derives it from the open-file limit (it cannot raise the hard one).
        'defaults',
        '  mode tcp',
        '  timeout connect 5s',
        '  timeout client 5m',
        '  timeout server 5m',
        ...options.map((option) => `  option ${option}`),
        'listen bench',
        `  bind 127.0.0.1:${port}`,
        '  balance roundrobin',
        ...backends.map((backend, i) => `  server s${i} 127.0.0.1:${backend}`),
        '',
      ].join('\n'),
    );
    const process = context.processes.spawn(name, 'haproxy', ['-db', '-f', file]);
    let dead = false;
    void process.exited.then(() => (dead = true));
    try {
      await listening(port, name, () => dead, timeoutMs);
    } catch (err) {
      await process.stop();
      throw new Error(`${(err as Error).message}: ${process.tail(5)}`);
    }
    return { process, port };
  });
}
