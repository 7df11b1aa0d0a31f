import { readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { relativeName } from '../core/dns-name.js';
import type { HostPort } from '../core/host-port.js';

/** What srvlink uses of resolv.conf(5). */
export interface ResolvConf {
  nameservers: HostPort[];
  search: string[];
  /** `options` lines, kept verbatim for rewriting. */
  options: string[];
}

/** Parse resolv.conf text (pure). Unknown lines are ignored, as the libc resolver does. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, ...args] = line.split(/\s+/);
    if (keyword === 'nameserver' && args[0]) {
      // Zone indexes (fe80::1%eth0) are kept; isIP accepts them.
      if (isIP(args[0]) !== 0) conf.nameservers.push({ host: args[0], port: 53 });
    } else if (keyword === 'search' || keyword === 'domain') {
      conf.search = args;
    } else if (keyword === 'options') {
      conf.options.push(args.join(' '));
    }
  }
  return conf;
}

/**
 * Read and parse a resolv.conf; a missing file is an empty one (libc then
 * uses 127.0.0.1). A file srvlink wrote is read as the original it keeps.
 */
export function readResolvConf(path = '/etc/resolv.conf'): ResolvConf {
  return parseResolvConf(originalText(readResolvConfText(path)));
}

/** The first line srvlink writes: how a file already pointing at the stub is recognized. */
export const STUB_RESOLV_CONF_HEADER = '# written by srvlink run --write-resolv-conf: names go through its DNS stub';

/** Prefix of the comment lines that keep the original file, line by line. */
const ORIGINAL_PREFIX = '# srvlink original: ';

/**
 * The resolv.conf that points a container at the stub (pure): the stub as the
 * only nameserver, `search` = `searchDomains` (the environment first), and
 * the old `options` kept. Below, every line of `originalText` as a comment
 * (`# srvlink original: nameserver 10.0.0.2`), so that a restart that finds
 * this file still knows the container's own resolvers (`originalText()`),
 * and the file can be put back as it was.
 */
export function stubResolvConf(old: ResolvConf, stubHost: string, searchDomains: readonly string[], originalText = ''): string {
  const lines = [STUB_RESOLV_CONF_HEADER, `nameserver ${stubHost}`];
  const search = searchDomains.map(relativeName).filter((d) => d !== '');
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  for (const options of old.options) lines.push(`options ${options}`);
  const original = originalText.endsWith('\n') ? originalText.slice(0, -1) : originalText;
  if (original !== '') lines.push(...original.split('\n').map((line) => `${ORIGINAL_PREFIX}${line}`));
  return `${lines.join('\n')}\n`;
}

/**
 * The container's own resolv.conf (pure): `text` itself, or, when `text` is
 * one srvlink wrote (a restart: the file still points at the stub), the
 * original it keeps in its comments.
 */
export function originalText(text: string): string {
  if (!text.startsWith(`${STUB_RESOLV_CONF_HEADER}\n`)) return text;
  const lines = text.split('\n').filter((line) => line.startsWith(ORIGINAL_PREFIX)).map((line) => line.slice(ORIGINAL_PREFIX.length));
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** The text of a file, or '' when it cannot be read (libc treats a missing resolv.conf as empty). */
export function readResolvConfText(path = '/etc/resolv.conf'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Replace the contents of `path` in place. In a container resolv.conf is
 * usually a bind mount: renaming a new file over it fails (EBUSY), so the
 * file itself is truncated and rewritten.
 */
export function rewriteFileInPlace(path: string, text: string): void {
  writeFileSync(path, text, { flag: 'w' });
}
