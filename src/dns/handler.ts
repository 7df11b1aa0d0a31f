import type { DnsMessage } from './codec.js';

/** Who asked, as the transport saw it. */
export interface DnsClientInfo {
  address: string;
  port: number;
  transport: 'udp' | 'tcp';
  /**
   * The local address the query arrived on, when the transport knows it:
   * TCP always, UDP when the socket is bound to one address (Node gives no
   * destination address of a datagram on a wildcard socket).
   */
  localAddress?: string;
}

/** One query on its way through the handler chain. */
export interface DnsRequest {
  message: DnsMessage;
  client: DnsClientInfo;
}

/** Ask the rest of the chain for the reply. */
export type NextHandler = () => Promise<DnsMessage>;

/**
 * A link in the chain (the CoreDNS plugin shape): answer the request, or call
 * `next` to pass it on. Throw to fail: the server turns the error into an
 * rcode in one place (`rcodeForError`).
 */
export interface DnsHandler {
  readonly name: string;
  handle(request: DnsRequest, next: NextHandler): Promise<DnsMessage>;
}

/** Run `request` through `handlers` in order; `last` answers what nobody took. */
export function runChain(
  handlers: readonly DnsHandler[],
  request: DnsRequest,
  last: (request: DnsRequest) => Promise<DnsMessage>,
): Promise<DnsMessage> {
  const step = (index: number): Promise<DnsMessage> => {
    const handler = handlers[index];
    if (!handler) return last(request);
    return handler.handle(request, () => step(index + 1));
  };
  return step(0);
}
