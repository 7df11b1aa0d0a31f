import { runCli } from './program.js';
import { createLogger } from '../core/logger.js';
import { installProcessFaultHandlers } from '../core/process-faults.js';

// What the executable runs (main.cts loads it, bundled or not): the process-wide handlers, then the
// command line. Whatever the process itself says on stderr goes through the same logger as the
// commands' lines: one JSON object per line.
const log = createLogger();

// One bad request must not end the process: logged as one line and counted instead.
installProcessFaultHandlers(log);

// Node's own warnings (deprecations from dependencies, listener counts) as structured lines like
// every other log line, not free text on stderr.
process.removeAllListeners('warning');
process.on('warning', (warning) => log.warn('node warning', { name: warning.name, warning: warning.message }));

// Output piped into `head` and the like: a closed pipe is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  log.error('cannot write to stdout', { error: err.message, code: err.code });
});
// A broken stderr leaves nowhere to say anything: end on EPIPE, else carry on without it.
process.stderr.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
});

runCli(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    log.error('unexpected failure', { error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
    process.exitCode = 1;
  },
);
