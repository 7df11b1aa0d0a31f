import { errorMessage } from '../core/errors.js';
import { spawnOwned } from '../core/own-children.js';
import { boundedCheck } from './bounded-check.js';
import type { HealthCheck } from './health-check.js';

/**
 * `exec:COMMAND`: passes when `/bin/sh -c COMMAND` exits with 0; on timeout
 * its whole process group is killed. Its output is discarded; only the
 * program's name is shown (arguments may hold passwords: `mysqladmin -pSECRET ping`).
 */
export function execCheck(command: string, timeout: number): HealthCheck {
  const words = command.split(/\s+/);
  const description = `exec:${words[0] ?? ''}${words.length > 1 ? ' …' : ''}`;
  return {
    description,
    timeout,
    run: (outer) =>
      boundedCheck(
        timeout,
        outer,
        (signal, note) =>
          new Promise((resolve) => {
            note('waiting for the command to exit');
            // Its own process group (detached), so a timeout kills the shell and
            // everything it started, not just the shell.
            const child = spawnOwned('/bin/sh', ['-c', command], { stdio: 'ignore', detached: true });
            const killGroup = (): void => {
              if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
              try {
                process.kill(-child.pid, 'SIGKILL');
              } catch {
                // Already gone.
              }
            };
            signal.addEventListener('abort', killGroup, { once: true });
            child.once('error', (err) => {
              signal.removeEventListener('abort', killGroup);
              resolve({ ok: false, reason: `cannot run: ${errorMessage(err)}` });
            });
            child.once('exit', (code, killedBy) => {
              signal.removeEventListener('abort', killGroup);
              resolve(code === 0 ? { ok: true, reason: 'exit code 0' } : { ok: false, reason: code === null ? `killed by ${killedBy ?? 'a signal'}` : `exit code ${code}` });
            });
          }),
      ),
  };
}
