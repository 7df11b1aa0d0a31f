/**
 * The registry of srvlink's own children against the real reaper (the
 * native addon): a zombie that Node still waits for is never reaped when
 * `spawnOwned` started it, and is when something spawned it behind the
 * registry's back (which test/architecture.test.ts forbids). Run in a
 * process of its own, whose event loop is held while the child exits, so
 * that the scan meets the zombie before libuv can collect it.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../../src/core/native-addon.js';

const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const addon = loadNativeAddon();

const SCRIPT = `
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ownChildren, spawnOwned } from '${DIST}core/own-children.js';
import { loadNativeAddon } from '${DIST}core/native-addon.js';
const { addon } = loadNativeAddon();
// Hold the event loop (libuv cannot collect) until the child is a zombie, then scan as the reaper does.
const scanOnceZombie = (child) => {
  const deadline = Date.now() + 20000;
  while (!/\\) Z /.test(readFileSync('/proc/' + child.pid + '/stat', 'utf8'))) if (Date.now() > deadline) throw new Error('no zombie');
  return addon.reapZombies([...ownChildren()]);
};
const owned = spawnOwned('sh', ['-c', 'exit 5'], { stdio: 'ignore' });
const registered = ownChildren().has(owned.pid);
const ownedReaped = scanOnceZombie(owned);
const code = await new Promise((resolve) => owned.once('exit', (c) => resolve(c)));
const raw = spawn('sh', ['-c', 'exit 6'], { stdio: 'ignore' });
raw.unref();
const rawReaped = scanOnceZombie(raw);
console.log(JSON.stringify({ registered, ownedReaped, code, leftRegistered: ownChildren().size, rawPid: raw.pid, rawReaped }));
process.exit(0);
`;

describe.skipIf(process.platform !== 'linux' || addon.addon === undefined)(`spawnOwned and the zombie reaper${addon.addon ? '' : ` (skipped: ${addon.reason})`}`, () => {
  it('never reaps a registered child Node waits for (its exit code arrives), and would reap an unregistered one', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', SCRIPT], { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
    );
    const result = JSON.parse(out) as { registered: boolean; ownedReaped: number[]; code: number; leftRegistered: number; rawPid: number; rawReaped: number[] };
    expect(result).toMatchObject({ registered: true, ownedReaped: [], code: 5, leftRegistered: 0 });
    // The same scan takes the status of a child it was not told about: what the registry prevents.
    expect(result.rawReaped).toEqual([result.rawPid]);
  });
});
