import type { Agent, ClientRequest, IncomingMessage, RequestOptions, request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import { InvalidArgumentError, SrvlinkError, errorMessage } from '../core/errors.js';
import { pollDeadline } from '../core/poll-deadline.js';

/** TLS material for an `https` etcd (PEM, as read from the files). */
export interface EtcdGatewayTls {
  readonly ca: Buffer;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

export interface EtcdGatewayOptions {
  /** Client URLs, `http://HOST:PORT` or `https://HOST:PORT`, without credentials: tried in turn. */
  readonly endpoints: readonly string[];
  /** For the `https` endpoints. */
  readonly tls?: EtcdGatewayTls | undefined;
  /** etcd's auth: a token is asked for with these before the first call, and again when it expires. */
  readonly auth?: { readonly username: string; readonly password: string } | undefined;
  /** Longest wait for one endpoint to answer before the next is tried, ms. Default 3000. */
  readonly attemptTimeout?: number;
}

/** gRPC status codes etcd answers with (google.golang.org/grpc/codes), those a caller tells apart. */
export const GRPC_NOT_FOUND = 5;
const GRPC_UNAVAILABLE = 14;
const GRPC_UNAUTHENTICATED = 16;

/** No answer of etcd's gateway is this large; a bigger one is not etcd. */
const MAX_RESPONSE_BYTES = 1 << 20;

/**
 * etcd answered a call with an error (`grpcCode`, gRPC's status code), or
 * could not be reached at all (`grpcCode` undefined).
 */
export class EtcdCallError extends SrvlinkError {
  readonly grpcCode: number | undefined;

  constructor(message: string, grpcCode: number | undefined, options?: { cause?: unknown }) {
    super('ERR_ETCD', message, options);
    this.name = 'EtcdCallError';
    this.grpcCode = grpcCode;
  }
}

interface Transport {
  readonly request: typeof httpRequest;
  readonly agent: Agent;
}

interface Endpoint {
  readonly url: string;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** The auth token this member gave (etcd's simple tokens are known to the member that issued them only). */
  token: string | undefined;
}

/**
 * A small client of etcd's v3 API as JSON over HTTP (the gRPC gateway every
 * etcd from 3.4 serves on its client URLs: `POST /v3/lease/grant` and so
 * on), for what a registration does: a few unary calls a few seconds apart.
 * It loads `node:http` (and `node:https` only for an https endpoint) instead
 * of gRPC, HTTP/2 and protobuf: a `srvlink register` weighs ~10 MB less.
 *
 * Endpoints are tried in turn, starting with the last that answered; a
 * member that refuses, resets or does not answer within `attemptTimeout`
 * is skipped for the next. With auth, each member is asked for a token
 * before its first call and again when it says the token is no longer valid.
 */
export class EtcdGateway {
  readonly #endpoints: readonly Endpoint[];
  readonly #tls: EtcdGatewayTls | undefined;
  readonly #auth: EtcdGatewayOptions['auth'];
  readonly #attemptTimeout: number;
  /** Where the next call starts: the endpoint that answered last. */
  #current = 0;
  /** By scheme, made on first use: `node:https` (and TLS) is loaded only for an https endpoint. */
  readonly #transports = new Map<boolean, Transport>();
  #closed = false;

  constructor(options: EtcdGatewayOptions) {
    if (options.endpoints.length === 0) throw new InvalidArgumentError('cannot create an etcd client: no endpoint given');
    this.#endpoints = options.endpoints.map((endpoint) => {
      const url = new URL(endpoint);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError(`invalid etcd endpoint "${endpoint}": expected http:// or https://`);
      const secure = url.protocol === 'https:';
      // An IPv6 literal comes bracketed in a URL, bare in a request's host.
      return { url: `${url.protocol}//${url.host}`, secure, host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? (secure ? 443 : 80) : Number(url.port), token: undefined };
    });
    if (this.#endpoints.some((e) => e.secure) && options.tls === undefined) throw new InvalidArgumentError('cannot create an etcd client for https: no CA given');
    this.#tls = options.tls;
    this.#auth = options.auth;
    this.#attemptTimeout = options.attemptTimeout ?? 3000;
  }

  /** The endpoints, as given (without credentials). */
  get endpoints(): string[] {
    return this.#endpoints.map((e) => e.url);
  }

  /**
   * `POST /v3/<method>` with `body` as JSON, on the first endpoint that
   * answers before `deadline` (ms since the epoch); resolves with etcd's
   * answer (for a streaming method, its first message). Rejects with an
   * `EtcdCallError`: etcd's own error, or every endpoint's failure.
   */
  async call<T extends object>(method: string, body: object, deadline: number): Promise<T> {
    const failures: string[] = [];
    const count = this.#endpoints.length;
    for (let tried = 0; tried < count; tried++) {
      if (this.#closed) throw new EtcdCallError(`cannot call etcd ${method}: the client is closed`, undefined);
      const index = (this.#current + tried) % count;
      const endpoint = this.#endpoints[index] as Endpoint;
      const left = deadline - Date.now();
      if (left <= 0) break;
      // The last endpoint may have all the time left; the others share it, but no less than a second each.
      const timeout = tried === count - 1 ? left : Math.min(left, Math.max(this.#attemptTimeout, 1000));
      try {
        const answer = await this.#callAuthenticated<T>(endpoint, method, body, Date.now() + timeout);
        this.#current = index;
        return answer;
      } catch (err) {
        // etcd itself answered: no other member would say otherwise (unless it has no leader).
        if (err instanceof EtcdCallError && err.grpcCode !== undefined && err.grpcCode !== GRPC_UNAVAILABLE) throw err;
        failures.push(`${endpoint.url}: ${errorMessage(err)}`);
      }
    }
    if (failures.length === 0) failures.push('no time left');
    throw new EtcdCallError(`cannot call etcd ${method}: ${failures.join('; ')}`, undefined);
  }

  /** Stop: idle connections are closed, calls in flight and later ones fail. Safe twice. */
  close(): void {
    this.#closed = true;
    for (const transport of this.#transports.values()) transport.agent.destroy();
  }

  async #callAuthenticated<T extends object>(endpoint: Endpoint, method: string, body: object, deadline: number): Promise<T> {
    if (this.#auth === undefined) return this.#post<T>(endpoint, method, body, deadline);
    for (let attempt = 0; ; attempt++) {
      endpoint.token ??= (await this.#post<{ token?: string }>(endpoint, 'auth/authenticate', { name: this.#auth.username, password: this.#auth.password }, deadline)).token;
      try {
        return await this.#post<T>(endpoint, method, body, deadline);
      } catch (err) {
        // Simple tokens expire (5 min idle by default) and die with a restart of the member: once more with a new one.
        if (attempt > 0 || !(err instanceof EtcdCallError) || err.grpcCode !== GRPC_UNAUTHENTICATED) throw err;
        endpoint.token = undefined;
      }
    }
  }

  async #post<T extends object>(endpoint: Endpoint, method: string, body: object, deadline: number): Promise<T> {
    const { request, agent } = this.#transport(endpoint.secure);
    const payload = JSON.stringify(body);
    const options: RequestOptions = {
      host: endpoint.host,
      port: endpoint.port,
      method: 'POST',
      path: `/v3/${method}`,
      agent,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        ...(endpoint.token !== undefined && method !== 'auth/authenticate' ? { authorization: endpoint.token } : {}),
      },
    };
    return new Promise<T>((resolve, reject) => {
      let req: ClientRequest | undefined = undefined;
      const wait = Math.max(0, deadline - Date.now());
      // After the poll: an answer that came in time while the process was busy is read, not cut.
      const timer = pollDeadline(wait, () => req?.destroy(new Error(`no answer within ${wait} ms`)));
      const fail = (err: Error): void => {
        timer.clear();
        reject(err);
      };
      req = request(options, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            res.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('end', () => {
          timer.clear();
          try {
            resolve(answerOf<T>(method, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
          } catch (err) {
            reject(err as Error);
          }
        });
      });
      req.on('error', fail);
      req.end(payload);
    });
  }

  #transport(secure: boolean): Transport {
    let transport = this.#transports.get(secure);
    if (transport === undefined) {
      const module = createRequire(import.meta.url)(secure ? 'node:https' : 'node:http') as { request: typeof httpRequest; Agent: new (options: object) => Agent };
      const tls = secure ? (this.#tls as EtcdGatewayTls) : undefined;
      // Connections stay open between calls: a keepalive every ttl/3 s needs no new handshake each time.
      const agent = new module.Agent({ keepAlive: true, maxSockets: 4, ...(tls ? { ca: tls.ca, ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) } : {}) });
      transport = { request: module.request, agent };
      this.#transports.set(secure, transport);
    }
    return transport;
  }
}

/** etcd's answer from the gateway's response: the message, or an `EtcdCallError` for an error. */
function answerOf<T extends object>(method: string, status: number, text: string): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new EtcdCallError(`cannot call etcd ${method}: HTTP ${status} with an answer that is not JSON: ${JSON.stringify(text.slice(0, 80))}`, undefined);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new EtcdCallError(`cannot call etcd ${method}: HTTP ${status} with an answer that is no object`, undefined);
  // A streaming method's messages come as {"result": ...} or {"error": {...}}; a unary one's error as {"error": "...", "code": N}.
  const record = parsed as { result?: unknown; error?: unknown; code?: unknown; message?: unknown };
  const error = typeof record.error === 'object' && record.error !== null ? (record.error as { code?: unknown; message?: unknown }) : status === 200 ? undefined : record;
  if (error !== undefined) {
    const code = typeof error.code === 'number' ? error.code : undefined;
    const message = typeof error.message === 'string' ? error.message : `HTTP ${status}`;
    // A gateway error without a gRPC code (a 404 of a path etcd does not serve) counts as unreachable.
    throw new EtcdCallError(`etcd refused ${method}: ${message}`, code);
  }
  return (typeof record.result === 'object' && record.result !== null ? record.result : parsed) as T;
}
