import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { checkResponse, type ExpectedResponse } from './check-response.js';
import { exchangeEnd, type ExchangeAttemptOptions, type ExchangeOutcome } from './exchange-outcome.js';

/**
 * One query over UDP (RFC 1035 §4.2.1): a socket of its own bound to port 0,
 * so the source port is fresh and random (RFC 5452 §9.2). `connect()` makes
 * the kernel report an ICMP port unreachable as ECONNREFUSED and drop
 * datagrams from other peers; the source is checked again all the same.
 * Resolves once the socket is closed: nothing of the exchange outlives it.
 */
export function udpExchange(wire: Buffer, expected: ExpectedResponse, options: ExchangeAttemptOptions): Promise<ExchangeOutcome> {
  // An abort between two exchanges has no listener to hear it: check before opening anything.
  if (options.signal?.aborted) return Promise.resolve({ kind: 'aborted' });
  return new Promise((resolve) => {
    const { server } = expected;
    const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    const end = exchangeEnd(
      options,
      (closed) => {
        socket.removeAllListeners('message');
        try {
          socket.close(closed);
        } catch {
          closed();
        }
      },
      resolve,
    );
    const finish = end.finish;
    // Stays attached after `finish` so that a late error cannot crash the process.
    socket.on('error', (error: Error) => finish({ kind: 'network', error }));
    socket.on('message', (msg: Buffer, rinfo: { address: string; port: number }) => {
      const verdict = checkResponse(msg, expected, rinfo);
      if (verdict.ok) finish({ kind: 'answer', message: verdict.message });
      else options.onIgnored(verdict);
    });
    socket.bind(0, () => {
      if (end.done) return;
      socket.connect(server.port, server.host, (err?: Error) => {
        if (end.done) return;
        if (err) {
          finish({ kind: 'network', error: err });
          return;
        }
        socket.send(wire, (sendErr: Error | null) => {
          if (sendErr) finish({ kind: 'network', error: sendErr });
        });
      });
    });
  });
}
