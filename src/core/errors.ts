/**
 * One error base class with a stable `code` per failure (the undici shape).
 * Deep code throws these; exactly one boundary per transport translates them:
 * DNS → rcode, proxy → close + one log line, CLI → exit code + one-line message.
 */
export class SrvlinkError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SrvlinkError';
    this.code = code;
  }
}

/** Bad flags, environment or config file: the CLI exits with code 2. */
export class ConfigError extends SrvlinkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options);
    this.name = 'ConfigError';
  }
}

/** A DNS exchange did not produce a usable answer (timeout, unreachable, truncated twice...). */
export class DnsQueryError extends SrvlinkError {
  /** rcode of the last response seen, when one was received. */
  readonly rcode: number | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; rcode?: number }) {
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
