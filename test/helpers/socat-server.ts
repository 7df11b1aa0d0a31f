import type { HostPort } from '../../src/core/host-port.js';
import { freePort } from './free-port.js';
import { spawnServer, type ServerProcess } from './server-process.js';
import { waitFor } from './wait-for.js';

/**
 * Flags for a socat echo (`PIPE`). socat copies what it reads from the
 * client into a pipe that only it reads, with blocking writes of up to its
 * buffer size, 8 KiB by default: once the client reads slower than it
 * writes, the pipe fills, and a write that needs more room than is left
 * blocks socat on itself for ever (seen as a megabyte echo that hangs on a
 * busy machine, with or without a proxy between). A write of one page
 * (4096 bytes, PIPE_BUF) always fits a pipe that select calls writable.
 */
export const SOCAT_ECHO_FLAGS: readonly string[] = ['-b', '4096'];

/**
 * socat listening on 127.0.0.1 with `address` options appended to its
 * TCP-LISTEN (e.g. `fork,linger=0`) and `target` as the other end (`PIPE`:
 * an echo) and `flags` before both (`-t 30`: after the first FIN socat
 * closes the other direction within that time, 0.5 s by default, too
 * short for an echo of megabytes on a busy machine). A `PIPE` echo gets
 * SOCAT_ECHO_FLAGS. Its listen backlog is 128 unless `address` sets one, not socat's 5: with a
 * handshake queue that short, clients connecting at once (a forwarder's
 * dials in one burst) are reset by the kernel once they send. A port taken
 * between the pick and socat's bind is retried. Killed when the test ends.
 */
export async function startSocatServer(options: string, target: string, flags: readonly string[] = []): Promise<{ socat: ServerProcess; address: HostPort }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    // -d -d logs "listening on".
    const echo = target === 'PIPE' ? SOCAT_ECHO_FLAGS : [];
    const socat = spawnServer('socat', ['-d', '-d', ...echo, ...flags, `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr${/\bbacklog=/.test(options) ? '' : ',backlog=128'}${options === '' ? '' : `,${options}`}`, target]);
    await waitFor(() => socat.child.exitCode !== null || /listening on/.test(socat.log()), { what: 'socat to listen' });
    if (socat.child.exitCode === null) return { socat, address: { host: '127.0.0.1', port } };
    if (attempt >= 5 || !/in use/i.test(socat.log())) throw new Error(`socat did not start: ${socat.log()}`);
  }
}
