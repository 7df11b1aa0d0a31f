import { connect as tcpConnect } from 'node:net';
import { checkResponse, type ExpectedResponse } from './check-response.js';
import { exchangeEnd, type ExchangeAttemptOptions, type ExchangeOutcome } from './exchange-outcome.js';
import { FrameDecoder, frameMessage } from './tcp-framing.js';

/**
 * One query over TCP (RFC 1035 §4.2.2, RFC 7766 §8): a connection of its own,
 * the query framed with its 2-byte length, the stream reassembled by
 * `FrameDecoder`; each frame is checked as a UDP datagram is. A stream that
 * cannot be framed is `invalid`. Resolves once the socket is closed.
 */
export function tcpExchange(wire: Buffer, expected: ExpectedResponse, options: ExchangeAttemptOptions): Promise<ExchangeOutcome> {
  if (options.signal?.aborted) return Promise.resolve({ kind: 'aborted' });
  return new Promise((resolve) => {
    const { server } = expected;
    const socket = tcpConnect({ host: server.host, port: server.port, noDelay: true });
    const decoder = new FrameDecoder();
    const end = exchangeEnd(
      options,
      (closed) => {
        socket.removeAllListeners('data');
        if (socket.closed) {
          closed();
        } else {
          socket.once('close', closed);
          socket.destroy();
        }
      },
      resolve,
    );
    const finish = end.finish;

    socket.on('error', (error: Error) => finish({ kind: 'network', error }));
    socket.on('close', () => finish({ kind: 'network', error: new Error('connection closed before an answer') }));
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        finish({ kind: 'invalid', reason: (err as Error).message });
        return;
      }
      for (const frame of frames) {
        const verdict = checkResponse(frame, expected);
        if (verdict.ok) {
          finish({ kind: 'answer', message: verdict.message });
          return;
        }
        options.onIgnored(verdict);
      }
    });
    socket.write(frameMessage(wire));
  });
}
