import type { HostPort } from '../../src/core/host-port.js';
import { freePort } from './free-port.js';
import { spawnServer, type ServerProcess } from './server-process.js';
import { waitFor } from './wait-for.js';

/**
 * socat listening on 127.0.0.1 with `address` options appended to its
 * TCP-LISTEN (e.g. `fork,linger=0`) and `target` as the other end (`PIPE`:
 * an echo) and `flags` before both (`-t 30`: after the first FIN socat
 * closes the other direction within that time, 0.5 s by default, too
 * short for an echo of megabytes on a busy machine). A port taken between the
 * pick and socat's bind is retried. Killed when the test ends.
 */
export async function startSocatServer(options: string, target: string, flags: readonly string[] = []): Promise<{ socat: ServerProcess; address: HostPort }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    // -d -d logs "listening on".
    const socat = spawnServer('socat', ['-d', '-d', ...flags, `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr${options === '' ? '' : `,${options}`}`, target]);
    await waitFor(() => socat.child.exitCode !== null || /listening on/.test(socat.log()), { what: 'socat to listen' });
    if (socat.child.exitCode === null) return { socat, address: { host: '127.0.0.1', port } };
    if (attempt >= 5 || !/in use/i.test(socat.log())) throw new Error(`socat did not start: ${socat.log()}`);
  }
}
