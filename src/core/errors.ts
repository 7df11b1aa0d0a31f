/**
 * Every code a `SrvlinkError` carries, so that a check such as
 * `err.code === 'ERR_DIAL_TIMEOUT'` is checked by the compiler and a new
 * failure is named here first.
 */
export type ErrorCode =
  // What the user typed (flags, environment, config or records file): exit code 2.
  | 'ERR_CONFIG'
  // A programming error: an internal constructor or function got what it must never get.
  | 'ERR_INVALID_ARG'
  // Life cycle: used before start, after close, or stopped.
  | 'ERR_ABORTED'
  | 'ERR_CLOSED'
  | 'ERR_NOT_STARTED'
  | 'ERR_LISTEN'
  // DNS exchanges and messages.
  | 'ERR_DNS_ABORTED'
  | 'ERR_DNS_BAD_RESPONSE'
  | 'ERR_DNS_INVALID_QUERY'
  | 'ERR_DNS_MALFORMED'
  | 'ERR_DNS_NODATA'
  | 'ERR_DNS_NXDOMAIN'
  | 'ERR_DNS_OVERLOAD'
  | 'ERR_DNS_SERVER_FAILURE'
  | 'ERR_DNS_TIMEOUT'
  | 'ERR_DNS_TRUNCATED'
  | 'ERR_DNS_UNREACHABLE'
  // Finding backends and dialing them.
  | 'ERR_DISCOVERY'
  | 'ERR_DIAL'
  | 'ERR_DIAL_ABORTED'
  | 'ERR_DIAL_TIMEOUT'
  // SkyDNS records, zones and etcd.
  | 'ERR_SKYDNS_KEY'
  | 'ERR_SKYDNS_RECORD'
  | 'ERR_ZONE_UNAVAILABLE'
  | 'ERR_ETCD'
  | 'ERR_LEASE_LOST'
  | 'ERR_REGISTRATION_CLOSED'
  // The supervised command, the admin endpoint and its files.
  | 'ERR_COMMAND_NOT_FOUND'
  | 'ERR_COMMAND_NOT_EXECUTABLE'
  | 'ERR_STATUS'
  | 'ERR_ACCESS_LOG';

/**
 * One error base class with a stable `code` per failure (the undici shape).
 * Deep code throws these; exactly one boundary per transport translates them:
 * DNS → rcode, proxy → close + one log line, CLI → exit code + one-line message.
 */
export class SrvlinkError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SrvlinkError';
    this.code = code;
  }
}

/**
 * Bad flags, environment, config or records file: what the user typed. The
 * CLI exits with code 2. Thrown by `config/` and by the pure parsers it calls
 * (`parseHostPort`, `parseDuration`...), never by a constructor.
 */
export class ConfigError extends SrvlinkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options);
    this.name = 'ConfigError';
  }
}

/**
 * An internal constructor or function was given what it must never get: a
 * programming error, not a usage error (exit code 1, not 2). `config/` checks
 * what the user typed first, so these checks are invariants.
 */
export class InvalidArgumentError extends SrvlinkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_ARG', message, options);
    this.name = 'InvalidArgumentError';
  }
}

/** A DNS exchange did not produce a usable answer (timeout, unreachable, truncated twice...). */
export class DnsQueryError extends SrvlinkError {
  /** rcode of the last response seen, when one was received. */
  readonly rcode: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; rcode?: number }) {
    super(code, message, options);
    this.name = 'DnsQueryError';
    this.rcode = options?.rcode;
  }
}

/** The payload of a DNS message could not be decoded. */
export class MalformedMessageError extends SrvlinkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DNS_MALFORMED', message, options);
    this.name = 'MalformedMessageError';
  }
}

/** Render any thrown value as a one-line message. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !(err instanceof SrvlinkError) && !err.message.includes(code)
      ? `${err.message} (${code})`
      : err.message;
  }
  return String(err);
}
