import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { HostPort } from '../../src/core/host-port.js';

const run = promisify(execFile);

/** One resource record as dig prints it: owner, ttl, class, type, rdata. */
export interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

export interface DigResult {
  status: string;
  flags: string[];
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  raw: string;
}

/**
 * Ask `server` with dig, a client we did not write. `extra` are dig options
 * such as `+tcp`. Parses dig's standard output sections.
 */
export async function dig(server: HostPort, name: string, type: string, extra: string[] = []): Promise<DigResult> {
  const { stdout } = await run('dig', digArgs(server, name, type, extra), { timeout: 30_000 });
  return parseDigOutput(stdout);
}

/** dig's arguments for one query: generous timeouts, no cookies (dnsmasq and srvlink do not use them). */
export function digArgs(server: HostPort, name: string, type: string, extra: string[] = []): string[] {
  return [`@${server.host}`, '-p', String(server.port), name, type, '+time=5', '+tries=2', '+nocookie', ...extra];
}

/** Read dig's standard output: status, flags and the record sections. */
export function parseDigOutput(stdout: string): DigResult {
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
  const section = (title: string): DigRecord[] => {
    const match = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
    if (!match?.[1]) return [];
    return match[1]
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith(';'))
      .map((line) => {
        const [owner = '', ttl = '0', , rtype = '', ...data] = line.split(/\s+/);
        return { name: owner, ttl: Number(ttl), type: rtype, data: data.join(' ') };
      });
  };
  return { status, flags, answer: section('ANSWER'), authority: section('AUTHORITY'), additional: section('ADDITIONAL'), raw: stdout };
}

/**
 * Ask `server` every question of `questions` (name, type) in order with one
 * dig process (`dig -f`), the options `extra` applying to all; one result per question.
 */
export async function digBatch(server: HostPort, questions: readonly (readonly [string, string])[], extra: string[] = []): Promise<DigResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'srvlink-dig-'));
  try {
    const batch = join(dir, 'batch');
    await writeFile(batch, questions.map(([name, type]) => `${name} ${type}\n`).join(''));
    const { stdout } = await run('dig', [`@${server.host}`, '-p', String(server.port), '+time=5', '+tries=2', '+nocookie', ...extra, '-f', batch], { timeout: 120_000 });
    const results = stdout.split(/^(?=; <<>> DiG )/m).filter((part) => part.startsWith('; <<>> DiG')).map(parseDigOutput);
    if (results.length !== questions.length) throw new Error(`dig -f answered ${results.length} of ${questions.length} questions:\n${stdout}`);
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
