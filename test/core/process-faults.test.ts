import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { installProcessFaultHandlers, type FaultSource } from '../../src/core/process-faults.js';
import { parseLogLines } from '../helpers/srvlink-process.js';

const run = promisify(execFile);
const DIST = fileURLToPath(new URL('../../dist/core/', import.meta.url));

describe('installProcessFaultHandlers', () => {
  it('logs each fault as one line with its stack, counts it, and installs once per process', () => {
    const lines: string[] = [];
    const source = new EventEmitter() as EventEmitter & FaultSource;
    const counts = installProcessFaultHandlers(createLogger({ write: (line) => lines.push(line) }), source);
    expect(installProcessFaultHandlers(createLogger(), source)).toBe(counts);
    source.emit('unhandledRejection', new Error('no catch'));
    source.emit('unhandledRejection', 'a plain string');
    source.emit('uncaughtException', new Error('thrown from a timer'));
    expect(counts).toEqual({ unhandledRejections: 2, uncaughtExceptions: 1 });
    const parsed = parseLogLines(lines.join(''));
    expect(parsed.map((l) => [l.level, l.msg, l.error, l.count])).toEqual([
      ['error', 'unhandled rejection (a bug): kept running', 'no catch', 1],
      ['error', 'unhandled rejection (a bug): kept running', 'a plain string', 2],
      ['error', 'uncaught exception (a bug): kept running', 'thrown from a timer', 1],
    ]);
    expect(parsed[0]?.stack).toMatch(/^Error: no catch\n\s+at /);
  });

  it('keeps a real process alive through a rejection and an exception, each one JSON line on stderr', async () => {
    // A real Node process with the handlers as main.ts installs them, then one fault of each kind.
    const script = `
      const { createLogger } = await import(${JSON.stringify(`${DIST}logger.js`)});
      const { installProcessFaultHandlers } = await import(${JSON.stringify(`${DIST}process-faults.js`)});
      const counts = installProcessFaultHandlers(createLogger());
      Promise.reject(new Error('rejected by one request'));
      setTimeout(() => { throw new Error('thrown by another'); }, 10);
      setTimeout(() => { console.log(JSON.stringify(counts)); }, 200);
    `;
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual({ unhandledRejections: 1, uncaughtExceptions: 1 });
    const lines = parseLogLines(stderr);
    expect(lines.filter((l) => l.level === 'raw')).toEqual([]);
    expect(lines.map((l) => [l.msg, l.error])).toEqual([
      ['unhandled rejection (a bug): kept running', 'rejected by one request'],
      ['uncaught exception (a bug): kept running', 'thrown by another'],
    ]);
  });
});
