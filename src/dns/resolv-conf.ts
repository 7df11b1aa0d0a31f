import { readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
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

/** Read and parse a resolv.conf; a missing file is an empty one (libc then uses 127.0.0.1). */
export function readResolvConf(path = '/etc/resolv.conf'): ResolvConf {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    text = '';
  }
  return parseResolvConf(text);
}

/**
 * The resolv.conf that points a container at the stub (pure): the stub as the
 * only nameserver, `search` = `searchDomains` (the environment first), and
 * the old `options` kept.
 */
export function stubResolvConf(old: ResolvConf, stubHost: string, searchDomains: readonly string[]): string {
  const lines = ['# written by srvlink run --write-resolv-conf: names go through its DNS stub', `nameserver ${stubHost}`];
  const search = searchDomains.map((d) => d.replace(/\.$/, '')).filter((d) => d !== '');
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  for (const options of old.options) lines.push(`options ${options}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Replace the contents of `path` in place. In a container resolv.conf is
 * usually a bind mount: renaming a new file over it fails (EBUSY), so the
 * file itself is truncated and rewritten.
 */
export function rewriteFileInPlace(path: string, text: string): void {
  writeFileSync(path, text, { flag: 'w' });
}
