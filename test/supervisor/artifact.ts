import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSrvlink, type SrvlinkProcess } from '../helpers/srvlink-process.js';
import { waitFor } from '../helpers/wait-for.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The self-contained executable `make image-artifact` builds: what the images copy to /srvlink/. */
export const ARTIFACT = join(ROOT, 'dist/artifact/srvlink/srvlink');

/**
 * Build the artifact unless it is up to date (make decides), one build at a
 * time across test workers (flock). Tests run this very file.
 */
export function ensureArtifact(): void {
  mkdirSync(join(ROOT, '.cache'), { recursive: true });
  try {
    execFileSync('flock', [join(ROOT, '.cache/artifact.lock'), 'make', '-s', '-C', ROOT, 'image-artifact'], { stdio: 'pipe', timeout: 300_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; stdout?: Buffer; message: string };
    throw new Error(`cannot build the artifact (make image-artifact): ${e.message}\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
  }
}

/** util-linux and iproute2 tools live in sbin, not on every PATH. */
export function tool(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) if (existsSync(join(dir, name))) return join(dir, name);
  return name;
}

/** srvlink as PID 1: the log of the process, and its PID as this (host) namespace sees it. */
export interface Pid1Process extends SrvlinkProcess {
  /** Host PID of srvlink (PID 1 inside); waits until it has been forked. */
  pid1(): Promise<number>;
  /** Send `signal` to srvlink itself (not to unshare). */
  signal(signal: NodeJS.Signals): Promise<void>;
}

export interface Pid1Options {
  env?: NodeJS.ProcessEnv;
  /**
   * Host PID of a namespace holder whose network and mount namespaces
   * srvlink joins (peers such as dnsmasq and etcd run there); srvlink still
   * gets a PID namespace of its own. Default: fresh network and mount
   * namespaces too (`unshare --pid --net --mount --fork --mount-proc`).
   */
  joinNamespaceOf?: number;
}

/**
 * Run `ARTIFACT ARGS...` as PID 1 of a new PID namespace, as a container
 * engine runs the base image's ENTRYPOINT. Killed when the test ends: setpriv
 * --pdeathsig ties unshare to this worker, --kill-child srvlink to unshare,
 * and the kernel everything in the namespace to srvlink.
 */
export function spawnPid1(args: string[], options: Pid1Options = {}): Pid1Process {
  const unshareFresh = [tool('unshare'), '--pid', '--net', '--mount', '--fork', '--kill-child', '--mount-proc', '--'];
  // A fresh network namespace has lo down; an engine brings it up before the entrypoint runs. exec keeps srvlink PID 1.
  const entrypoint = ['/bin/sh', '-c', `${tool('ip')} link set lo up && exec "$@"`, 'sh', ARTIFACT, ...args];
  const command =
    options.joinNamespaceOf === undefined
      ? [...unshareFresh, ...entrypoint]
      : [
          tool('nsenter'),
          '--target',
          String(options.joinNamespaceOf),
          '--net',
          '--mount',
          '--',
          tool('unshare'),
          '--pid',
          '--mount',
          '--fork',
          '--kill-child',
          '--mount-proc',
          '--',
          ARTIFACT,
          ...args,
        ];
  const process_ = spawnSrvlink(args, {
    env: options.env,
    spawner: (_node, _args, env) => spawn(tool('setpriv'), ['--pdeathsig', 'SIGKILL', '--', ...command], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  });
  const pid1 = async (): Promise<number> => {
    let pid: number | undefined;
    await waitFor(
      () => {
        const parent = process_.child.pid;
        const children = parent === undefined ? '' : readOr(`/proc/${parent}/task/${parent}/children`);
        const first = Number(children.trim().split(/\s+/)[0]);
        if (!Number.isInteger(first) || first <= 0) return false;
        // After the exec: the artifact itself, not the sh before it.
        if (!readOr(`/proc/${first}/cmdline`).startsWith(`${ARTIFACT}\0`)) return false;
        pid = first;
        return true;
      },
      { what: 'srvlink to start as PID 1' },
    );
    return pid as number;
  };
  return {
    ...process_,
    pid1,
    signal: async (signal) => {
      process.kill(await pid1(), signal);
    },
  };
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
