import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { SrvlinkError, errorMessage } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import type { Service } from '../core/lifecycle.js';
import { listenError } from '../core/listen-error.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { AdminMetrics } from './admin-metrics.js';
import type { AdminSource } from './admin-source.js';
import { readiness } from './readiness.js';

export interface AdminServerOptions {
  /** Where to listen (loopback by default in every command); port 0 picks a free one. */
  listen: HostPort;
  source: AdminSource;
  /** The metrics to render; a fresh `AdminMetrics` by default. */
  metrics?: AdminMetrics;
  logger?: Logger;
  /**
   * Open admin connections at most: a limit of its own, apart from the
   * mappings', so that a flood on a mapping or on this port cannot starve
   * the other. Default 64.
   */
  maxConnections?: number;
  /** A request must arrive whole within this many ms. Default 10000. */
  requestTimeout?: number;
}

/**
 * The admin HTTP endpoint (docs/architecture.md §4.7): `/metrics` (Prometheus
 * text or OpenMetrics, by `Accept`), `/healthz` (the event loop answers),
 * `/readyz` (200 when everything is in place, else 503 with what is
 * missing), `/status` (the snapshot as JSON). GET and HEAD only.
 */
export class AdminServer implements Service<HostPort> {
  readonly metrics: AdminMetrics;
  readonly #options: AdminServerOptions;
  readonly #log: Logger;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: AdminServerOptions) {
    this.#options = options;
    this.metrics = options.metrics ?? new AdminMetrics();
    this.#log = options.logger ?? silentLogger;
  }

  /** Listen; rejects with `ERR_LISTEN` when the address is taken. */
  async start(): Promise<void> {
    const server = createServer({ requestTimeout: this.#options.requestTimeout ?? 10_000, headersTimeout: 5000, keepAliveTimeout: 5000 }, (req, res) => {
      void this.#handle(req, res);
    });
    server.maxConnections = this.#options.maxConnections ?? 64;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: this.#options.listen.host, port: this.#options.listen.port, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      throw listenError(formatHostPort(this.#options.listen), err);
    }
    server.on('error', (err) => this.#log.warn('admin endpoint error', { error: errorMessage(err) }));
    this.#server = server;
  }

  address(): HostPort {
    const bound = this.#server?.address();
    if (!bound || typeof bound === 'string') throw new SrvlinkError('ERR_NOT_STARTED', 'admin endpoint is not listening');
    return { host: bound.address, port: bound.port };
  }

  /** Stop listening and close every admin connection; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      const server = this.#server;
      if (!server) return resolve();
      server.close(() => resolve());
      for (const socket of this.#sockets) socket.destroy();
    });
    return this.#closing;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(res, 405, 'text/plain; charset=utf-8', `method ${req.method ?? ''} not allowed: GET or HEAD\n`, { allow: 'GET, HEAD' });
      }
      switch (path) {
        case '/metrics': {
          const page = await this.metrics.render(this.#options.source, req.headers.accept);
          return send(res, 200, page.contentType, page.body);
        }
        case '/healthz':
          // Answering at all is the proof: the event loop runs.
          return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        case '/readyz': {
          const verdict = readiness(await this.#options.source.snapshot({ probe: true }));
          return sendJson(res, verdict.ready ? 200 : 503, verdict);
        }
        case '/status':
          return sendJson(res, 200, await this.#options.source.snapshot({ probe: true }));
        default:
          return send(res, 404, 'text/plain; charset=utf-8', `no such page "${path ?? ''}": /metrics, /healthz, /readyz, /status\n`);
      }
    } catch (err) {
      this.#log.warn('admin request failed', { path, error: errorMessage(err) });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `cannot answer "${path ?? ''}": ${errorMessage(err)}\n`);
      else res.destroy();
    }
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value, null, 2)}\n`);
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
