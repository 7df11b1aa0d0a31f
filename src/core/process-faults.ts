import { errorMessage } from './errors.js';
import type { Logger } from './logger.js';

/** Faults that reached the top of the process, counted since start (for status pages and metrics). */
export interface ProcessFaultCounts {
  unhandledRejections: number;
  uncaughtExceptions: number;
}

/** What the handlers attach to: the process, or an emitter that stands for it in a test. */
export interface FaultSource {
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
  on(event: 'uncaughtException', listener: (error: Error) => void): unknown;
}

const installed = new WeakMap<FaultSource, ProcessFaultCounts>();

/**
 * Keep one bad request from ending the process: an unhandled rejection or an
 * uncaught exception is logged as one line (level error, with the stack) and
 * counted, and the process goes on serving. Every other connection and query
 * is independent of the one that failed, and for a process in front of every
 * connection of an app, staying up with a loud line beats a restart that
 * drops them all. A bug found this way is still a bug: the line says so.
 *
 * Installing twice on the same process returns the same counters.
 */
export function installProcessFaultHandlers(logger: Logger, source: FaultSource = process): ProcessFaultCounts {
  const known = installed.get(source);
  if (known) return known;
  const counts: ProcessFaultCounts = { unhandledRejections: 0, uncaughtExceptions: 0 };
  installed.set(source, counts);
  source.on('unhandledRejection', (reason) => {
    counts.unhandledRejections++;
    logger.error('unhandled rejection (a bug): kept running', { ...describe(reason), count: counts.unhandledRejections });
  });
  source.on('uncaughtException', (error) => {
    counts.uncaughtExceptions++;
    logger.error('uncaught exception (a bug): kept running', { ...describe(error), count: counts.uncaughtExceptions });
  });
  return counts;
}

function describe(reason: unknown): { error: string; stack?: string } {
  const stack = reason instanceof Error ? reason.stack : undefined;
  return stack === undefined ? { error: errorMessage(reason) } : { error: errorMessage(reason), stack };
}
