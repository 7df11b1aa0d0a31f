#!/usr/bin/env node
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS file's imports (see below) */
import fs = require('node:fs');
import nodeModule = require('node:module');
import path = require('node:path');
import vm = require('node:vm');
/* eslint-enable @typescript-eslint/no-require-imports */

// The executable's entry: everything else lives in cli/. `make build` also bundles srvlink's own
// modules into one CommonJS file (dist/bundle/srvlink.cjs, the etcd client in etcd.cjs beside it):
// loaded with require, it starts in about half the CPU time and ~6 MB less memory than a hundred
// ES modules, each resolved and read on its own. It is used only when built after this file, so
// that a `tsc` run alone never leaves a stale bundle in charge; without it, the modules one by one.
//
// This file is CommonJS (dist/main.cjs; dist/main.js, the executable, is a link to it that make
// build makes, and node runs the file a link leads to): a process whose entry is an ES module
// loads node's ES module loader as well, 1.2 MB of resident memory for the life of the process.
const { readFileSync, renameSync, rmSync, statSync, writeFileSync } = fs;
const { createRequire } = nodeModule;
const { dirname, join } = path;
const { Script } = vm;
/** When a start writes the bundle's code cache: once what starting compiled is in it too (ms). */
const WRITE_CACHE_AFTER = 1000;

const bundle = join(__dirname, 'bundle/srvlink.cjs');
if (builtAfter(bundle, __filename)) runBundle(bundle);
else void import('./cli/entry.js');

function builtAfter(file: string, than: string): boolean {
  try {
    return statSync(file).mtimeMs >= statSync(than).mtimeMs;
  } catch {
    return false;
  }
}

/**
 * Runs `file` as CommonJS does, compiled with V8's code cache beside it
 * (`FILE.cache`): compiling the bundle and the functions a start runs is
 * most of srvlink's own start-up CPU time (~48 → ~31 ms to ready for `srvlink
 * run`). `make build` writes it (images/srvlink/bundle.mjs starts a `srvlink run`);
 * a process that found no cache, or one V8 refused (another node version),
 * writes one a second after start, once start-up has compiled what it needs;
 * where it cannot (a read-only install) every start compiles, as a plain
 * require would. V8 checks a cache against
 * the length of the source only: the cache names the bundle it was made from
 * (modification time and size), and one made from another is not used.
 */
function runBundle(file: string): void {
  const cacheFile = `${file}.cache`;
  const { mtimeMs, size } = statSync(file);
  const stamp = Buffer.from(`${JSON.stringify({ mtimeMs, size })}\n`);
  let cachedData: Buffer | undefined;
  try {
    const cache = readFileSync(cacheFile);
    if (cache.subarray(0, stamp.length).equals(stamp)) cachedData = cache.subarray(stamp.length);
  } catch {
    cachedData = undefined;
  }
  // CommonJS's own wrapper, on a line of its own so that line numbers in stack traces are the file's.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {\n${readFileSync(file, 'utf8')}\n})`, { filename: file, lineOffset: -1, cachedData });
  // Only a process started without node options writes: one started with other V8 flags would
  // write a cache that every start without them refuses (and writes again).
  if ((cachedData === undefined || script.cachedDataRejected === true) && process.execArgv.length === 0) {
    setTimeout(() => writeCache(cacheFile, stamp, script), WRITE_CACHE_AFTER).unref();
  }
  const module = { exports: {} };
  (script.runInThisContext() as (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void)(module.exports, createRequire(file), module, file, dirname(file));
}

function writeCache(cacheFile: string, stamp: Buffer, script: vm.Script): void {
  const temporary = `${cacheFile}.${process.pid}`;
  try {
    writeFileSync(temporary, Buffer.concat([stamp, script.createCachedData()]));
    // Atomic: a process starting meanwhile reads the old cache or the new one, never half of one.
    renameSync(temporary, cacheFile);
  } catch {
    // Not writable: no cache, every start compiles.
    rmSync(temporary, { force: true });
  }
}
