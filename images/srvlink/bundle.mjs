// Builds dist/bundle/ (make build): srvlink's own modules in one CommonJS file, srvlink.cjs, which
// dist/main.js loads when it is newer than itself, and beside it the libraries a command loads
// only when it uses them, each group in a file of its own that srvlink.cjs requires on first use:
//
//   etcd.cjs   etcd3 with gRPC, protobufjs and cockatiel (one copy, shared by srvlink and etcd3);
//              etcd's gRPC definitions come pre-parsed (src/etcd/grpc-package-definition.ts
//              stands in for @grpc/proto-loader), so no .proto file is read or parsed at run time
//
// One file loads in a fraction of the CPU time and memory of the hundred-odd files of these
// packages, each resolved, read and wrapped on its own. srvlink.cjs without comments and
// whitespace (the source is kept in memory) but with every name, for stack traces; the
// libraries minified.
//
// Usage: node images/srvlink/bundle.mjs [out-dir]   (default dist/bundle)
import { spawn } from 'node:child_process';
import { existsSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(root, process.argv[2] ?? 'dist/bundle');

/** The libraries bundled on their own: output file → the package names it exports. */
const LIBRARY_BUNDLES = { 'etcd.cjs': ['etcd3', 'cockatiel'] };

/** Where the pre-parsed etcd definitions replace the loader that parses the .proto files. */
const ETCD_PROTO_LOADER_ALIAS = { '@grpc/proto-loader': join(root, 'src/etcd/grpc-package-definition.ts') };

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  legalComments: 'none',
  logLevel: 'warning',
  minifyWhitespace: true,
  minifySyntax: true,
};

/**
 * Node's own modules that srvlink.cjs requires on first use of one of their exports, not at
 * start: an idle `srvlink run` with static mappings uses none of them, and each costs resident
 * memory once loaded (measured beside a node with one listener: crypto 0.6 MB, perf_hooks 0.3,
 * fs/promises 0.25, with the modules of node they load in turn).
 */
const LAZY_BUILTINS = ['crypto', 'perf_hooks', 'fs/promises'];

const libraryOf = new Map(Object.entries(LIBRARY_BUNDLES).flatMap(([file, names]) => names.map((name) => [name, file])));

for (const [file, names] of Object.entries(LIBRARY_BUNDLES)) {
  await build({
    ...common,
    // The libraries' local names too (~2 MB less for an etcd client: shorter source, scope and
    // context data): their stack traces are not srvlink's to read. Function and class names stay
    // as they are only in srvlink.cjs: keeping them here (keepNames) costs what minifying saves.
    minify: true,
    stdin: { contents: `module.exports = { ${names.map((name) => `${JSON.stringify(name)}: require(${JSON.stringify(name)})`).join(', ')} };`, resolveDir: root, sourcefile: file, loader: 'js' },
    alias: ETCD_PROTO_LOADER_ALIAS,
    outfile: join(out, file),
  });
}

await build({
  ...common,
  entryPoints: [join(root, 'src/cli/entry.ts')],
  outfile: join(out, 'srvlink.cjs'),
  // Loaded from node_modules on first use, as they are: a config file's YAML, the admin endpoint's metrics.
  external: ['prom-client', 'yaml'],
  // ESM's import.meta.url has no CommonJS twin: the bundle's own URL stands in.
  define: { 'import.meta.url': 'srvlinkModuleUrl' },
  banner: { js: 'var srvlinkModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [
    {
      // `import { randomInt } from 'node:crypto'` and the like: a module of getters, one per export
      // of the node module (listed here, with this node), the first read of one requiring it; that
      // export is a plain value from then on.
      name: 'lazy-builtins',
      setup(esbuild) {
        const names = LAZY_BUILTINS.map((name) => name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|');
        esbuild.onResolve({ filter: new RegExp(`^(node:)?(${names})$`) }, (args) =>
          // The module's own require is node's.
          args.namespace === 'lazy-builtin' ? { path: args.path, external: true } : { path: args.path.replace(/^node:/, ''), namespace: 'lazy-builtin' },
        );
        esbuild.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
          const keys = Object.keys(require(`node:${args.path}`));
          return {
            contents: [
              'let loaded;',
              `for (const key of ${JSON.stringify(keys)}) {`,
              '  Object.defineProperty(exports, key, {',
              '    enumerable: true,',
              '    configurable: true,',
              '    get() {',
              `      const value = (loaded ??= require(${JSON.stringify(`node:${args.path}`)}))[key];`,
              '      Object.defineProperty(exports, key, { value, enumerable: true });',
              '      return value;',
              '    },',
              '  });',
              '}',
            ].join('\n'),
            loader: 'js',
          };
        });
      },
    },
    {
      // `import('etcd3')` and the like: the package's exports from its library bundle, required
      // beside srvlink.cjs when the import runs (esbuild keeps a dynamic import lazy).
      name: 'library-bundles',
      setup(esbuild) {
        const filter = new RegExp(`^(${[...libraryOf.keys()].map((name) => name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})$`);
        esbuild.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'library-bundle' }));
        esbuild.onLoad({ filter: /.*/, namespace: 'library-bundle' }, (args) => ({
          contents: `module.exports = require(${JSON.stringify(`./${libraryOf.get(args.path)}`)})[${JSON.stringify(args.path)}];`,
          loader: 'js',
        }));
        esbuild.onResolve({ filter: /^\.\/[^/]+\.cjs$/, namespace: 'library-bundle' }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
});

// The executable, dist/main.js: a link to dist/main.cjs (src/main.cts), which node runs as the
// CommonJS file the link leads to, without its ES module loader. A link, not a copy: a `tsc` run
// alone rewrites main.cjs, which then takes the modules one by one until the next make build.
const main = join(root, 'dist/main.js');
if (out === join(root, 'dist/bundle') && existsSync(join(root, 'dist/main.cjs'))) {
  rmSync(main, { force: true });
  symlinkSync('main.cjs', main);
}

// The bundle's V8 code cache (srvlink.cjs.cache, src/main.cts), made here by a `srvlink run` on
// loopback (one static mapping on a port of its choosing, no stub, no admin endpoint): what a
// start compiles, so that no process pays for writing it at run time.
const cache = join(out, 'srvlink.cjs.cache');
if (out === join(root, 'dist/bundle') && existsSync(main)) {
  const child = spawn(process.execPath, [main, 'run', '--domain', 'cache.skydns.local', '--discovery', 'static', '--map', '127.0.0.1:0=cache', '--backend', 'cache=127.0.0.1:9', '--dns-listen', 'none', '--admin', 'none'], { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  while (!existsSync(cache) && Date.now() < deadline && child.exitCode === null) await sleep(50);
  child.kill('SIGKILL');
  if (!existsSync(cache)) process.stderr.write(`srvlink bundle: no code cache written in ${cache}: every start compiles the bundle until one is\n`);
}
