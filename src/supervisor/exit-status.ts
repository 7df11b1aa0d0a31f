import { constants } from 'node:os';

/**
 * The exit status a shell would report for a process that ended with `code`
 * or was killed by `signal`: the code itself, or 128 + the signal number
 * (so SIGKILL gives 137, SIGTERM 143).
 */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal !== null) return 128 + (constants.signals[signal] ?? 0);
  return code ?? 0;
}
