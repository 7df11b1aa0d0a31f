import { execFile } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';
import { spawnServer } from './server-process.js';
import { tempDir } from './temp-dir.js';
import { waitFor } from './wait-for.js';

const run = promisify(execFile);

/** Debian's PostgreSQL binaries (the newest installed major version). */
export function postgresBin(): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  return join('/usr/lib/postgresql', versions[0] ?? '15', 'bin');
}

/** A PostgreSQL server of its own: a fresh cluster (initdb) on a loopback port. */
export interface PostgresServer {
  readonly port: number;
  log(): string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * initdb a cluster in a temporary directory and start `postgres -D dir -k dir
 * -p PORT` on 127.0.0.1; as root it runs as the `postgres` user (PostgreSQL
 * refuses root). With `tls`, `ssl=on` with the given certificate and key.
 * Killed with the test.
 */
export async function startPostgres(options: { tls?: { cert: string; key: string } } = {}): Promise<PostgresServer> {
  const dir = join(tempDir(), 'pg');
  mkdirSync(dir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  let user: string[] = [];
  // The server reads its certificate as itself: copies in its own directory.
  const tls = options.tls ? { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') } : undefined;
  if (options.tls && tls) {
    copyFileSync(options.tls.cert, tls.cert);
    copyFileSync(options.tls.key, tls.key);
  }
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const uid = Number(stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    // The temporary directory is root's and private: let the postgres user in.
    chmodSync(join(dir, '..'), 0o755);
    chownSync(dir, uid, gid);
    if (tls) {
      for (const file of [tls.cert, tls.key]) chownSync(file, uid, gid);
    }
    user = ['--reuid=postgres', '--regid=postgres', '--init-groups'];
  }
  if (tls) chmodSync(tls.key, 0o600);
  const bin = postgresBin();
  const data = join(dir, 'data');
  await run('setpriv', [...user, join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'], { cwd: dir });
  const port = await freePort();
  const settings = ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'logging_collector=off'];
  if (tls) settings.push('-c', 'ssl=on', '-c', `ssl_cert_file=${tls.cert}`, '-c', `ssl_key_file=${tls.key}`);
  const spawned = spawnServer(join(bin, 'postgres'), ['-D', data, '-k', dir, '-p', String(port), ...settings], { cwd: dir, setpriv: user });
  const { child, log } = spawned;
  const server: PostgresServer = { port, log, kill: spawned.kill };
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${log()}`);
      return log().includes('database system is ready to accept connections');
    },
    { what: `postgres on port ${port}`, interval: 50, timeout: 30_000 },
  );
  return server;
}
