/**
 * Every line srvlink writes to stderr is one JSON object: usage errors from
 * the parser, a failed command, the help shown for a missing command.
 */
import { describe, expect, it } from 'vitest';
import { runSrvlink } from '../helpers/srvlink-process.js';

describe('srvlink stderr', () => {
  it.each([
    [[], 'missing command'],
    [['--bogus'], "unknown option '--bogus'"],
    [['nosuch'], "unknown command 'nosuch'"],
    [['run', '--map', '2181=zookeeper'], 'missing --domain'],
    [['resolve'], "missing required argument 'service'"],
    [['dns', '--listen', 'localhost:99999'], 'invalid port "99999"'],
  ])('%j: one JSON line per line, exit 2', async (args, message) => {
    const result = await runSrvlink(args);
    expect(result.code).toBe(2);
    expect(result.lines.length).toBeGreaterThan(0);
    expect(result.lines.filter((line) => line.level === 'raw')).toEqual([]);
    expect(result.lines[0]).toMatchObject({ level: 'error', exitCode: 2, msg: expect.stringContaining(message) as unknown });
  });
});
