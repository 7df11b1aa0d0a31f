import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { DEMO_RECORDS } from '../skydns/demo-records.js';

/**
 * `make demo`: the whole idea on one machine, as an ordinary user, with no
 * etcd and no fixed ports. Starts `srvlink dns` on a free loopback port with
 * the demo records file, then asks it with `srvlink resolve`.
 */
const main = fileURLToPath(new URL('../main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'srvlink-demo-'));
const recordsFile = join(dir, 'records.yaml');

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function run(): Promise<number> {
  writeFileSync(recordsFile, stringify(DEMO_RECORDS));
  say(`== the cluster's records, as SkyDNS keeps them in etcd (${recordsFile}):`);
  say(stringify(DEMO_RECORDS).trimEnd().replace(/^/gm, '   '));

  const dns = spawn(process.execPath, [main, 'dns', '--listen', '127.0.0.1:0', '--records', recordsFile], { stdio: ['ignore', 'inherit', 'pipe'] });
  const cleanup = (): void => {
    if (dns.exitCode === null) dns.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

  const address = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    dns.stderr.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n')) {
        try {
          const entry = JSON.parse(line) as { msg?: string; address?: string };
          if (entry.msg === 'dns server listening' && entry.address) resolve(entry.address);
        } catch {
          // A partial line: wait for the rest.
        }
      }
    });
    dns.once('exit', (code) => reject(new Error(`srvlink dns exited with ${code}: ${buffered}`)));
  });
  say(`\n== srvlink dns serves them on ${address} (a free port; SkyDNS / CoreDNS-etcd compatible)`);

  for (const [title, args] of [
    ['the demo service, by its short name in environment env1', ['demo', '--domain', 'env1.skydns.local']],
    ['ZooKeeper, by its full SRV name', ['_zookeeper._tcp.env1.skydns.local']],
  ] as const) {
    say(`\n== srvlink resolve ${args.join(' ')} --cluster-dns ${address}     # ${title}`);
    const result = spawnSync(process.execPath, [main, 'resolve', ...args, '--cluster-dns', address], { encoding: 'utf8' });
    process.stdout.write(result.stdout.replace(/^(?=.)/gm, '   '));
    if (result.status !== 0) {
      process.stderr.write(result.stderr);
      return 1;
    }
  }
  say('\n== a name that does not exist: a one-line error and exit code 1');
  const missing = spawnSync(process.execPath, [main, 'resolve', 'nosuch', '--domain', 'env1.skydns.local', '--cluster-dns', address], { encoding: 'utf8' });
  say(`   ${missing.stderr.trim()}  (exit code ${missing.status})`);
  return missing.status === 1 ? 0 : 1;
}

run().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
