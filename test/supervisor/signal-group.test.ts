import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * An app (sh) with a worker of its own (a second sh in its process group).
 * Each records SIGTERM in `log`; the app, on SIGTERM, kills what is left of
 * its worker and exits 3, so the outcome says who received the signal.
 * Both die with their parent (`setpriv --pdeathsig`), so a test that fails
 * before its SIGTERM leaves no loop behind when srvlink is killed.
 */
function appScript(log: string): string {
  const worker = `trap 'echo worker-TERM >> ${log}; exit 0' TERM; echo worker-ready >> ${log}; while :; do sleep 0.05; done`;
  return [
    `setpriv --pdeathsig KILL -- sh -c "${worker}" & worker=$!`,
    `trap 'echo app-TERM >> ${log}; sleep 0.3; kill -9 $worker 2>/dev/null; exit 3' TERM`,
    `echo app-ready >> ${log}`,
    'while :; do sleep 0.05; done',
  ].join('\n');
}

async function runAndTerminate(extra: string[]): Promise<{ status: number; lines: string[] }> {
  const log = join(tempDir(), 'signals.log');
  const read = (): string[] => {
    try {
      return readFileSync(log, 'utf8').trim().split('\n');
    } catch {
      return [];
    }
  };
  const srvlink = spawnSrvlink([
    'run', '--dns-listen', 'none', '--domain', 'env1.skydns.local', '--discovery', 'static',
    '--map', '127.0.0.1:0=x', '--backend', 'x=127.0.0.1:9', ...extra, '--', 'setpriv', '--pdeathsig', 'KILL', '--', 'sh', '-c', appScript(log),
  ]);
  await waitFor(() => read().includes('app-ready') && read().includes('worker-ready'), { what: 'the app and its worker to start' });
  srvlink.child.kill('SIGTERM');
  const status = await srvlink.exited;
  return { status, lines: read() };
}

describe('--signal-group', () => {
  it("forwards SIGTERM to the command's whole process group", async () => {
    const { status, lines } = await runAndTerminate(['--signal-group']);
    expect(lines).toContain('app-TERM');
    expect(lines).toContain('worker-TERM');
    expect(status).toBe(3);
  });

  it('without it, only the command itself receives the signal', async () => {
    const { status, lines } = await runAndTerminate([]);
    expect(lines).toContain('app-TERM');
    expect(lines).not.toContain('worker-TERM');
    expect(status).toBe(3);
  });
});
