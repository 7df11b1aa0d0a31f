#!/usr/bin/env node
import { runCli } from './cli/program.js';

// The executable's entry: everything else lives in cli/.

// Output piped into `head` and the like: a closed pipe is the reader's choice, not an error.
// Node's own warnings (deprecations from dependencies, listener counts) as structured lines like
// every other log line, not free text on stderr.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'warn', msg: 'node warning', name: warning.name, warning: warning.message })}\n`);
});

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

runCli(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`srvlink: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
