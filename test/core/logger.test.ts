import { describe, expect, it } from 'vitest';
import { LOG_LEVELS, createLogger, silentLogger } from '../../src/core/logger.js';

function capture(format: 'json' | 'text'): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const log = createLogger({ format, write: (line) => lines.push(line), now: () => new Date('2026-01-02T03:04:05.678Z') });
  return { lines, log };
}

describe('createLogger', () => {
  it('writes one JSON object per line by default', () => {
    const { lines, log } = capture('json');
    log.child({ mapping: 'zk' }).warn('backend ejected', { backend: '10.0.0.2:2181', failures: 3 });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toEqual({ time: '2026-01-02T03:04:05.678Z', level: 'warn', msg: 'backend ejected', mapping: 'zk', backend: '10.0.0.2:2181', failures: 3 });
  });

  it('writes one readable line per event with --log-format text: time, level, message, key=value', () => {
    const { lines, log } = capture('text');
    log.child({ mapping: 'zk' }).info('listening', { address: '127.0.0.1:2181', note: 'two words', list: ['a', 'b'], gone: undefined, err: new Error('boom\nsecond line') });
    expect(lines).toEqual(['2026-01-02T03:04:05.678Z INFO  listening mapping=zk address=127.0.0.1:2181 note="two words" list=["a","b"] err={"message":"boom\\nsecond line"}\n']);
  });

  it('writes the time as toISOString would, from the UTC fields', () => {
    const times = [0, Date.UTC(2024, 1, 29, 23, 59, 59, 999), Date.UTC(1999, 11, 31, 0, 0, 0, 7), Date.UTC(2026, 0, 1, 9, 5, 3, 40), Date.UTC(1, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), Date.UTC(-1, 5, 6)];
    for (const time of times) {
      const date = new Date(time);
      const lines: string[] = [];
      createLogger({ write: (line) => lines.push(line), now: () => date }).info('x');
      expect((JSON.parse(lines[0] as string) as { time: string }).time).toBe(date.toISOString());
    }
  });

  it('tells which levels it writes, as its children do: the silent logger none', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', write: (line) => lines.push(line) });
    for (const logger of [log, log.child({ mapping: 'zk' })]) {
      expect(LOG_LEVELS.map((level) => logger.enabled?.(level))).toEqual([false, false, true, true]);
    }
    log.info('dropped');
    log.warn('kept');
    expect(lines).toHaveLength(1);
    expect(LOG_LEVELS.map((level) => silentLogger.enabled?.(level))).toEqual([false, false, false, false]);
  });

  it('never writes the credentials of a URL, in either format', () => {
    for (const format of ['json', 'text'] as const) {
      const { lines, log } = capture(format);
      log.warn('cannot reach http://user:s3cret@10.0.0.5:2379', { endpoint: 'http://user:s3cret@10.0.0.5:2379' });
      expect(lines.join('')).not.toContain('s3cret');
    }
  });
});
