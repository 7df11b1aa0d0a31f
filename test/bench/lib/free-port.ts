import { once } from 'node:events';
import { createServer } from 'node:net';

/**
 * A TCP port of 127.0.0.1 free a moment ago, for the tools that want a
 * port in their configuration (HAProxy, iperf3, dnsmasq, unbound, etcd):
 * another process may take it before they bind, so callers retry with
 * another one when the tool says the address is in use (`withFreePort`).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `start(port)` with a fresh free port, again (up to 5 times) when it throws. */
export async function withFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      last = err;
    }
  }
  throw last;
}
