import { ConfigError } from '../core/errors.js';

const NAMED: Readonly<Record<string, number>> = { n: 0x0a, r: 0x0d, t: 0x09, '0': 0x00, '\\': 0x5c };

/**
 * The bytes of `--check-send`, with the escapes a shell makes awkward to type:
 * `\n`, `\r`, `\t`, `\0`, `\\` and `\xHH`; everything else is sent as UTF-8.
 * `srvr\n` → `73 72 76 72 0a`. Throws a `ConfigError` naming `what` for an
 * unknown or unfinished escape.
 */
export function parseCheckSend(text: string, what: string): Buffer {
  const parts: Buffer[] = [];
  let last = 0;
  for (const match of text.matchAll(/\\(x[0-9a-fA-F]{2}|[\s\S]|$)/g)) {
    parts.push(Buffer.from(text.slice(last, match.index), 'utf8'));
    const escape = match[1] ?? '';
    const byte = escape.length === 3 ? Number.parseInt(escape.slice(1), 16) : NAMED[escape];
    if (byte === undefined) {
      throw new ConfigError(`invalid ${what} "${text}": unknown escape "\\${escape}" at character ${match.index + 1}; expected \\n, \\r, \\t, \\0, \\\\ or \\xHH`);
    }
    parts.push(Buffer.from([byte]));
    last = match.index + match[0].length;
  }
  parts.push(Buffer.from(text.slice(last), 'utf8'));
  return Buffer.concat(parts);
}
