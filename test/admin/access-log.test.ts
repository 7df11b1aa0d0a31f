import { readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { AccessLog, type AccessRecord } from '../../src/admin/access-log.js';
import { createLogger } from '../../src/core/logger.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const record = (n: number): AccessRecord => ({ mapping: '_zk._tcp.env1.skydns.local.', client: '127.0.0.1:40000', backend: '10.0.0.1:2181', tried: ['10.0.0.2:2181'], bytesIn: n, bytesOut: 2 * n, ms: 12.4, outcome: 'closed' });
const lines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter(Boolean);

/** An access log on `file`; what it says of itself (a reopen, a watch it could not make) goes to `said`, and is shown when the test fails. */
async function openLog(file: string, format?: 'json' | 'text', said: string[] = []): Promise<AccessLog> {
  const logger = createLogger({ level: 'debug', write: (line) => void said.push(line) });
  onTestFailed(() => console.error(`the access log's own lines:\n${said.join('')}`));
  const log = new AccessLog({ target: { kind: 'file', path: file }, ...(format ? { format } : {}), logger, now: () => new Date('2026-01-02T03:04:05.678Z') });
  await log.start();
  onTestFinished(() => log.close());
  return log;
}

describe('AccessLog', () => {
  it('writes one JSON line per connection', async () => {
    const file = join(tempDir(), 'access.log');
    const log = await openLog(file);
    log.write(record(5));
    await waitFor(() => lines(file).length === 1);
    expect(JSON.parse(lines(file)[0] as string)).toEqual({
      time: '2026-01-02T03:04:05.678Z',
      mapping: '_zk._tcp.env1.skydns.local.',
      client: '127.0.0.1:40000',
      backend: '10.0.0.1:2181',
      tried: ['10.0.0.2:2181'],
      bytesIn: 5,
      bytesOut: 10,
      ms: 12,
      outcome: 'closed',
    });
  });

  it('writes readable lines in text format', async () => {
    const file = join(tempDir(), 'access.log');
    const log = await openLog(file, 'text');
    log.write({ ...record(5), backend: undefined, tried: [], outcome: 'no-backend' });
    await waitFor(() => lines(file).length === 1);
    expect(lines(file)).toEqual(['2026-01-02T03:04:05.678Z _zk._tcp.env1.skydns.local. 127.0.0.1:40000 -> - in=5 out=10 12ms no-backend']);
  });

  it.each(['moved away', 'deleted'])('reopens the path by itself when the file is %s (no signal needed)', async (how) => {
    const file = join(tempDir(), 'access.log');
    const said: string[] = [];
    const log = await openLog(file, undefined, said);
    log.write(record(1));
    await waitFor(() => lines(file).length === 1);
    if (how === 'moved away') renameSync(file, `${file}.1`);
    else rmSync(file);
    // The watch notices and opens a fresh file at the path; until it says so, lines still go to
    // the old one (the new file is on disk a moment before the switch).
    await waitFor(() => said.some((line) => line.includes('"access log reopened"')), { what: 'the access log to be reopened' });
    expect(readFileSync(file, 'utf8')).toBe('');
    log.write(record(2));
    await waitFor(() => lines(file).length === 1);
    expect(JSON.parse(lines(file)[0] as string)).toMatchObject({ bytesIn: 2 });
    if (how === 'moved away') expect(lines(`${file}.1`)).toHaveLength(1);
  });

  it('reopen() after a move starts a new file; a second close is harmless', async () => {
    const file = join(tempDir(), 'access.log');
    const log = await openLog(file);
    renameSync(file, `${file}.old`);
    await log.reopen();
    log.write(record(3));
    await log.close();
    await log.close();
    expect(lines(file)).toHaveLength(1);
  });

  it('rejects at start when the file cannot be opened', async () => {
    const log = new AccessLog({ target: { kind: 'file', path: join(tempDir(), 'no-such-dir', 'access.log') } });
    await expect(log.start()).rejects.toThrow(/ENOENT/);
  });
});
