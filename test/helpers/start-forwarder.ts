import { onTestFinished } from 'vitest';
import type { HostPort } from '../../src/core/host-port.js';
import { createLogger, type LogLevel } from '../../src/core/logger.js';
import { Forwarder, type ForwarderOptions } from '../../src/proxy/forwarder.js';
import type { LogLine } from './log-line.js';

export interface TestForwarder {
  forwarder: Forwarder;
  address: HostPort;
  /** Every log line, parsed. */
  logs: LogLine[];
}

/**
 * Start a forwarder on 127.0.0.1 port 0 with its log captured (debug level
 * unless `logLevel` says otherwise) and a 1 s drain unless given; closed
 * when the test ends.
 */
export async function startForwarder(
  options: Partial<ForwarderOptions> & Pick<ForwarderOptions, 'source'>,
  logLevel: LogLevel = 'debug',
): Promise<TestForwarder> {
  const logs: LogLine[] = [];
  const forwarder = new Forwarder({
    name: 'test',
    listen: { host: '127.0.0.1', port: 0 },
    // Short, so the cleanup of a test that left a connection open is quick.
    drainTimeout: 1000,
    logger: createLogger({ level: logLevel, write: (line) => void logs.push(JSON.parse(line) as LogLine) }),
    ...options,
  });
  onTestFinished(() => forwarder.close());
  await forwarder.start();
  return { forwarder, address: forwarder.address(), logs };
}

/** Log lines at `level` whose message matches `pattern`. */
export function linesMatching(logs: readonly LogLine[], level: string, pattern: RegExp): LogLine[] {
  return logs.filter((line) => line.level === level && pattern.test(line.msg));
}
