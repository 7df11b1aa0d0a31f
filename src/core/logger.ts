import { redactUrl } from './redact-url.js';

/** Severity levels, lowest first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, unknown>;

/** How lines look: one JSON object (for machines, the default), or readable text (for people at a terminal). */
export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** One structured line per event (docs/architecture.md §4.7). */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
  /** Whether lines of `level` are written, to skip making fields nobody reads; a logger without it writes every level. */
  enabled?(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stderr by default so stdout stays the command's own output. */
  write?: (line: string) => void;
  now?: () => Date;
  /** Default `json`. */
  format?: LogFormat;
}

/** Create a logger that writes one JSON object per line. */
export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? 'info');
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    const line = { time: isoTime(now()), level, msg, ...bound, ...fields };
    write(options.format === 'text' ? textLine(line) : `${JSON.stringify(line, replacer)}\n`);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
    enabled: (level) => LOG_LEVELS.indexOf(level) >= threshold,
  };
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `date.toISOString()`, made from its UTC fields: V8's toISOString sets up
 * the local time zone through ICU on its first call (~0.75 MB resident for
 * the life of the process, and time at start), which a line in UTC never
 * needs. Years outside 0000–9999 take toISOString's extended form.
 */
function isoTime(date: Date): string {
  const year = date.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return date.toISOString();
  return `${pad(year, 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.${pad(date.getUTCMilliseconds(), 3)}Z`;
}

/** A logger that drops everything (library default, tests). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
  enabled: () => false,
};

/** `2026-01-02T03:04:05.678Z WARN  backend ejected mapping=_zk._tcp.env1. backend=10.0.0.2:2181`: one line, fields as key=value. */
function textLine({ time, level, msg, ...fields }: { time: string; level: LogLevel; msg: string } & LogFields): string {
  const parts = [time, level.toUpperCase().padEnd(5), redactUrl(msg)];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    // Strings are quoted when they would run into the next field; everything else is its JSON.
    if (typeof value === 'string') {
      const text = redactUrl(value);
      parts.push(`${key}=${/^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)}`);
    } else parts.push(`${key}=${JSON.stringify(value, replacer) ?? String(value)}`);
  }
  return `${parts.join(' ').replace(/[\r\n]+/g, ' ')}\n`;
}

/** Errors as their message and code; bigints as text; never a URL's credentials (`redactUrl`), whatever field holds one. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { message: redactUrl(value.message), code: (value as NodeJS.ErrnoException).code };
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return redactUrl(value);
  return value;
}
