#!/usr/bin/env node
import { runCli } from './cli/program.js';

// The executable's entry: everything else lives in cli/.
runCli(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`srvlink: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
