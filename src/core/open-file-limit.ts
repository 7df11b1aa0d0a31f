import { readFileSync } from 'node:fs';

/**
 * This process's soft limit of open files (RLIMIT_NOFILE, as `ulimit -n`
 * shows it), read from /proc/self/limits; undefined where that cannot be
 * read (not Linux) or the limit is unlimited. Node raises the soft limit to
 * the hard one at start, so this is the limit srvlink lives with.
 */
export function openFileLimit(limits = '/proc/self/limits'): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync(limits, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}
