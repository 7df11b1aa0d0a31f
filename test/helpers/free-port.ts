import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { once } from 'node:events';

/**
 * A port free for both UDP and TCP on `host` right now, for third-party
 * servers that cannot report the port they bound (dnsmasq). Another process
 * may take it before the caller binds it: callers retry on EADDRINUSE.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const udp = createSocket('udp4');
    udp.bind(0, host);
    await once(udp, 'listening');
    const { port } = udp.address();
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, host, () => resolve(true));
    });
    udp.close();
    if (ok) {
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      return port;
    }
  }
}
