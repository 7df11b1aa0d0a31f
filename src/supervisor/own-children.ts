import { ChildProcess } from 'node:child_process';

const pids = new Set<number>();
let installed = false;

/**
 * Pids of the children this process spawned through `node:child_process`
 * (the supervised command, health-check commands, anything a library
 * starts), until Node has collected their exit status. The zombie reaper
 * must never reap these: libuv waits for each by pid, and a status taken
 * from it would be lost to its `exit` event.
 *
 * Every asynchronous spawn (spawn, exec, execFile, fork) goes through
 * `ChildProcess.prototype.spawn`, so wrapping it once sees them all, whoever
 * calls it. `spawnSync` blocks this thread until its child is collected, so
 * the reaper cannot run meanwhile.
 */
export function ownChildren(): ReadonlySet<number> {
  if (!installed) {
    installed = true;
    // Not in Node's type definitions, but the path every spawn takes in lib/internal/child_process.js.
    const prototype = ChildProcess.prototype as unknown as { spawn(this: ChildProcess, ...args: unknown[]): unknown };
    const spawn = prototype.spawn;
    prototype.spawn = function spawnTracked(this: ChildProcess, ...args: unknown[]): unknown {
      const result = spawn.apply(this, args);
      const pid = this.pid;
      if (pid === undefined) return result; // failed to spawn: no process to protect
      pids.add(pid);
      // 'exit' comes after libuv's waitpid: from then on the pid is not ours.
      this.once('exit', () => pids.delete(pid));
      return result;
    };
  }
  return pids;
}
