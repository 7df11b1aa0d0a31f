import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export interface WatchFileOptions {
  /** Quiet time after the last event before `onChange` runs, ms; default 200. Editors write in bursts. */
  debounceMs?: number;
  /** Told when the watch itself fails (the directory went away); the watch then stops. */
  onError?: (err: Error) => void;
}

/** A running watch; `close()` stops it, safe to call twice. */
export interface FileWatch {
  close(): void;
}

/**
 * Call `onChange` (debounced) after `path` may have changed. The directory is
 * watched, not the file: editors that save by writing a new file and
 * renaming it over the old one, and Kubernetes ConfigMap volumes that swap a
 * `..data` symlink, replace the inode a watch on the file would follow. The
 * caller reads the file and decides whether anything changed (other files
 * of the directory wake it too). Throws when the directory cannot be watched.
 */
export function watchFile(path: string, onChange: () => void, options: WatchFileOptions = {}): FileWatch {
  const full = resolve(path);
  const file = basename(full);
  const debounceMs = options.debounceMs ?? 200;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const watcher: FSWatcher = watch(dirname(full), { persistent: false }, (_event, changed) => {
    if (closed) return;
    // `..data` and `..2026_...` entries are how a ConfigMap volume swaps all its files at once.
    if (changed !== null && changed !== file && !changed.startsWith('..')) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!closed) onChange();
    }, debounceMs);
  });
  watcher.on('error', (err) => {
    closed = true;
    clearTimeout(timer);
    watcher.close();
    options.onError?.(err);
  });
  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}
