import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** Pids of the processes started by `spawnOwned` whose exit Node has not collected yet. */
const pids = new Set<number>();

/**
 * Start a process as `child_process.spawn` does, and register its pid until
 * Node has collected its exit status: the zombie reaper (PID 1, subreaper)
 * must never reap these, since libuv waits for each by pid and a status
 * taken from it would be lost to the `exit` event.
 *
 * Every asynchronous spawn of srvlink goes through here (the supervised
 * command, exec checks, the demo): test/architecture.test.ts keeps any
 * other file of src/ from importing `spawn`, `exec`, `execFile` or `fork`,
 * and checks that no dependency srvlink runs spawns processes. The pid is
 * registered before this returns, so no scan can come between the fork and
 * the registration (scans run on the event loop). `spawnSync` needs none:
 * it blocks this thread until its child is collected, so no scan runs
 * meanwhile.
 */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, [...args], options);
  const pid = child.pid;
  // No pid: it failed to spawn ('error' follows), so there is no process to protect.
  if (pid !== undefined) {
    pids.add(pid);
    // 'exit' comes after libuv's waitpid: from then on the pid is not ours.
    child.once('exit', () => pids.delete(pid));
  }
  return child;
}

/** The pids `spawnOwned` started that Node still waits for: what the reaper leaves alone. */
export function ownChildren(): ReadonlySet<number> {
  return pids;
}
