/**
 * `--subreaper` outside a container: srvlink (not PID 1) asks the kernel for
 * its orphaned descendants (PR_SET_CHILD_SUBREAPER) and reaps them, while
 * Node still sees its own children's exit status.
 */
import { describe, expect, it } from 'vitest';
import { spawnSrvlink } from '../helpers/srvlink-process.js';

// Five orphans: how many are srvlink's children (the app's parent) while they
// live, then how many of srvlink's children are zombies once they have exited.
// The scan reads /proc with shell builtins only: a process per file made it
// slower than the orphans' lives on a busy machine.
const COUNT_FN =
  'count() { n=0; for f in /proc/[0-9]*/status; do name=; state=; ppid=; ' +
  'while read -r k v _; do case $k in Name:) name=$v;; State:) state=$v;; PPid:) ppid=$v;; esac; done 2>/dev/null < "$f"; ' +
  '[ "$name" = sleep ] && [ "$ppid" = "$PPID" ] && [ "$state" = "$2" ] && n=$((n+1)); done; echo "$1=$n"; }';
const ORPHANS = [COUNT_FN, 'for i in 1 2 3 4 5; do (exec sleep 2 &); done; sleep 0.2', 'count adopted S', 'sleep 2.5', 'count zombies Z', 'exit 3'].join('; ');

const RUN = ['run', '--domain', 'env1.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=x', '--backend', 'x=127.0.0.1:1', '--dns-listen', 'none', '--subreaper'];

describe.skipIf(process.platform !== 'linux')('srvlink run --subreaper', () => {
  it("reaps the orphans of the app it supervises, and exits with the app's code", async () => {
    const srvlink = spawnSrvlink([...RUN, '--', 'sh', '-c', ORPHANS]);
    expect(await srvlink.exited).toBe(3);
    expect(srvlink.stdout()).toContain('adopted=5');
    expect(srvlink.stdout()).toContain('zombies=0');
    expect(srvlink.logs.find((l) => l.msg === 'reaping orphaned zombies')).toMatchObject({ pid1: false, subreaper: true });
  });

  it('without the addon is no subreaper, says so once, and still runs the app', async () => {
    const srvlink = spawnSrvlink([...RUN, '--', 'sh', '-c', ORPHANS], { env: { SRVLINK_NATIVE_ADDON: '/nonexistent/srvlink_native.node' } });
    expect(await srvlink.exited).toBe(3);
    // Not a subreaper: the orphans go to the machine's init (which reaps them), none to srvlink.
    expect(srvlink.stdout()).toContain('adopted=0');
    expect(srvlink.logs.filter((l) => l.msg.startsWith('orphaned zombies will not be reaped'))).toHaveLength(1);
  });
});
