import { createRequire } from 'node:module';
import { isIP, type Socket } from 'node:net';
import type { connect as tlsConnect } from 'node:tls';
import { boundedCheck } from './bounded-check.js';
import type { CheckResult, HealthCheck } from './health-check.js';
import type { ServiceUrl } from './service-url.js';
import { answerExcerpt, tcpExchange } from './tcp-exchange.js';

/** SSLRequest (PostgreSQL protocol, "Message Formats"): length 8, code 80877103. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
/** Past this a TLS handshake that only serves a clean close is abandoned. */
const TLS_CLOSE_CAP_MS = 2000;

/**
 * `postgres://HOST[:PORT]`: sends an SSLRequest, the first message of a
 * connection, and passes when the server answers `S` (TLS on) or `N` (off):
 * the postmaster accepts connections and forks a backend for them. A frozen
 * server, a refused connection or any other answer fails. It logs in as
 * nobody, so the server logs nothing: after `N` the connection closes before
 * a startup packet (PostgreSQL keeps quiet about connections that send none);
 * after `S` the TLS handshake is completed (certificate not verified: the
 * check asks whether the server answers, not who it is) and closed with a
 * close_notify, since closing right after `S` makes it log "could not accept
 * SSL connection: EOF detected". It does not tell a server that is still
 * starting up or in recovery from one that takes queries: use
 * `exec:pg_isready -h HOST -p PORT` for that.
 */
export function postgresCheck(target: ServiceUrl, timeout: number): HealthCheck {
  return {
    description: `postgres://${target.hostPort}`,
    timeout,
    run: (outer) =>
      boundedCheck(timeout, outer, (signal, note) =>
        tcpExchange({
          host: target.host,
          port: target.port,
          send: SSL_REQUEST,
          decide: decideSslAnswer,
          signal,
          note,
          finish: (socket, received) => closeAfterAnswer(socket, received, target.host),
        }),
      ),
  };
}

function decideSslAnswer(received: Buffer): CheckResult | undefined {
  const first = received[0];
  if (first === undefined) return undefined;
  if (first === 0x53) return { ok: true, reason: 'answered the SSLRequest (TLS on)' };
  if (first === 0x4e) return { ok: true, reason: 'answered the SSLRequest (TLS off)' };
  // 'E': an ErrorResponse, e.g. a server too old for SSLRequest or out of connections.
  return { ok: false, reason: `unexpected answer to an SSLRequest: ${answerExcerpt(received)}` };
}

function closeAfterAnswer(socket: Socket, received: Buffer, host: string): void {
  const cap = setTimeout(() => socket.destroy(), TLS_CLOSE_CAP_MS);
  cap.unref();
  socket.once('close', () => clearTimeout(cap));
  // Nothing more is read off the raw socket: after 'S' the next bytes are TLS's.
  socket.removeAllListeners('data');
  if (received.length !== 1 || received[0] !== 0x53) {
    socket.end();
    return;
  }
  // Loaded for the first server that answers `S`: TLS costs a process that never meets one about 2 MB.
  const connect = (createRequire(import.meta.url)('node:tls') as { connect: typeof tlsConnect }).connect;
  const tls = connect({ socket, rejectUnauthorized: false, ...(isIP(host) === 0 ? { servername: host } : {}) });
  tls.on('error', () => socket.destroy());
  tls.once('secureConnect', () => tls.end());
  tls.once('close', () => socket.destroy());
}
