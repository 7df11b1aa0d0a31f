// Builds the self-contained artifact (docs/architecture.md §4.8) in dist/artifact/srvlink/:
//
//   srvlink               one executable: this machine's node with the bundled code
//                         injected (a Node single executable application), so the image
//                         needs neither Node nor a shell
//   srvlink_native.node   the native addon (zombie reaping), loaded from beside srvlink
//   lib/                  the shared libraries srvlink needs (ldd), for images without them
//                         (FROM scratch): copy them to the same paths in the image
//
// Usage: node images/srvlink/build-artifact.mjs [out-dir]
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(root, process.argv[2] ?? 'dist/artifact/srvlink');
const work = resolve(out, '../build');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
mkdirSync(work, { recursive: true });

// 1. One CommonJS file: Node 20's single executable runs exactly one CommonJS script.
const bundle = join(work, 'srvlink.cjs');
await build({
  // The command line's entry itself: src/main.ts only chooses between a bundle and the modules.
  entryPoints: [join(root, 'src/cli/entry.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: bundle,
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  // ESM's import.meta.url has no CommonJS twin: the executable's own URL stands in.
  define: { 'import.meta.url': 'srvlinkModuleUrl' },
  banner: { js: 'var srvlinkModuleUrl = require("node:url").pathToFileURL(process.execPath).href;' },
  // etcd's gRPC definitions pre-parsed (src/etcd/grpc-package-definition.ts), as in make build's
  // bundle: no .proto file to ship or parse.
  alias: { '@grpc/proto-loader': join(root, 'src/etcd/grpc-package-definition.ts') },
});
// A shebang line is not JavaScript to the single-executable loader.
const code = readFileSync(bundle, 'utf8');
if (code.startsWith('#!')) writeFileSync(bundle, code.slice(code.indexOf('\n') + 1));

// 2. The single executable: node + the bundle as a blob (https://nodejs.org/api/single-executable-applications.html).
const blob = join(work, 'sea-prep.blob');
const seaConfig = join(work, 'sea-config.json');
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'pipe' });
const executable = join(out, 'srvlink');
copyFileSync(process.execPath, executable);
chmodSync(executable, 0o755);
// Debug symbols are most of a distribution's node binary; the code does not need them.
try {
  execFileSync('strip', ['--strip-debug', executable], { stdio: 'ignore' });
} catch {
  process.stderr.write('srvlink artifact: strip not found, the executable keeps its debug symbols\n');
}
execFileSync(process.execPath, [join(root, 'node_modules/postject/dist/cli.js'), executable, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], {
  // LIEF warns about every ELF note it does not know: shown only when injecting fails.
  stdio: 'pipe',
});

// 3. The addon, when it could be built (srvlink runs without it and says so).
const addon = join(root, 'build/Release/srvlink_native.node');
if (existsSync(addon)) copyFileSync(addon, join(out, 'srvlink_native.node'));
else process.stderr.write(`srvlink artifact: no native addon at "${addon}": orphaned zombies will not be reaped\n`);

// 4. Shared libraries, at their absolute paths under lib/ (lib/lib64/ld-linux-x86-64.so.2, ...).
const libs = new Set();
for (const file of [executable, join(out, 'srvlink_native.node')].filter(existsSync)) {
  for (const match of execFileSync('ldd', [file], { encoding: 'utf8' }).matchAll(/(\/\S+) \(0x/g)) libs.add(match[1]);
}
for (const lib of libs) {
  const target = join(out, 'lib', lib);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(lib, target); // follows the symlink: the file itself under the name the loader asks for
}

const size = (path) => statSync(path).size;
process.stderr.write(
  `srvlink artifact: ${out} (executable ${(size(executable) / 1e6).toFixed(1)} MB, libraries ${([...libs].reduce((n, l) => n + size(l), 0) / 1e6).toFixed(1)} MB)\n`,
);
