import type { BenchContext } from './bench-section.js';
import type { OwnedProcess } from './process-group.js';

export interface RunningEcho {
  readonly process: OwnedProcess;
  readonly ports: readonly number[];
}

/** test/bench/echo-server.c on `count` free ports of 127.0.0.1. */
export async function startEchoServer(context: BenchContext, count = 1): Promise<RunningEcho> {
  const process = context.processes.spawn('echo server', await context.binary('echo-server'), [String(count)]);
  const line = await process.waitForLine((l) => l.startsWith('ports'), 'ports line');
  return { process, ports: line.split(' ').slice(1).map(Number) };
}

export interface ConnRate {
  readonly connections: number;
  readonly errors: number;
  readonly rate: number;
  readonly p50_us: number;
  readonly p90_us: number;
  readonly p99_us: number;
  readonly max_us: number;
}

/**
 * test/bench/conn-client.c: `concurrency` clients doing connect, one byte
 * there and back, close, for `seconds`, against `ports` of 127.0.0.1 in
 * turn; with `resolve`, each connection first asks that DNS server for
 * the name's A and AAAA records and connects to the A answer.
 */
export async function connRate(
  context: BenchContext,
  ports: readonly number[],
  concurrency: number,
  seconds: number,
  resolve?: { dnsPort: number; name: string },
): Promise<ConnRate> {
  const args = ['rate', '127.0.0.1', ports.join(','), String(concurrency), String(seconds)];
  if (resolve) args.push('127.0.0.1', String(resolve.dnsPort), resolve.name);
  const result = await context.processes.run('conn-client', await context.binary('conn-client'), args, { timeoutMs: (seconds + 30) * 1000 });
  if (result.status !== 0) throw new Error(`conn-client ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return JSON.parse(result.stdout) as ConnRate;
}
