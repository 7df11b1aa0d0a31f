/**
 * Imports point one way (docs/architecture.md §4): cli → features → discovery → dns → core,
 * and features → skydns-model → core.
 * A feature does not import another feature; what two share moves down.
 * This reads the import lines of src/ and keeps that true.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const FEATURES = ['stub', 'proxy', 'skydns', 'registry', 'supervisor', 'admin'];

/** Which top-level folders of src/ each folder may import from (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  dns: ['core'],
  discovery: ['dns', 'core'],
  // The SkyDNS record model (key paths, the record, the value written), a leaf beside dns/:
  // the zone reads records and the registry writes them, and two features may not import each
  // other, so the one model both use sits below them (as CoreDNS's plugin/etcd/msg).
  'skydns-model': ['core'],
  ...Object.fromEntries(FEATURES.map((feature) => [feature, ['skydns-model', 'discovery', 'dns', 'core']])),
  // Config validates with the pure parsers of the layers below and of the registry,
  // and shows the defaults of the parts it configures (FORWARDER_DEFAULTS, the stub cache's size).
  config: ['registry', 'proxy', 'stub', 'skydns-model', 'discovery', 'dns', 'core'],
  demo: ['skydns', 'core'],
  // What the bundled etcd client loads in place of @grpc/proto-loader (images/srvlink/bundle.mjs):
  // imported by the build, by no folder.
  etcd: ['core'],
  cli: ['config', ...FEATURES, 'skydns-model', 'discovery', 'dns', 'core'],
};

function importsOf(folder: string): { file: string; target: string }[] {
  const dir = join(SRC, folder);
  return readdirSync(dir)
    .filter((name) => name.endsWith('.ts'))
    .flatMap((name) =>
      [...readFileSync(join(dir, name), 'utf8').matchAll(/from '\.\.\/([a-z-]+)\//g)].map((match) => ({ file: `${folder}/${name}`, target: match[1] as string })),
    );
}

describe('import direction', () => {
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);

  it('knows every folder of src/', () => {
    expect(folders.filter((folder) => !(folder in ALLOWED))).toEqual([]);
  });

  it.each(folders.filter((folder) => folder in ALLOWED))('src/%s imports only from the layers below it', (folder) => {
    const wrong = importsOf(folder).filter(({ target }) => !(ALLOWED[folder] ?? []).includes(target));
    expect(wrong).toEqual([]);
  });

  it('has no default exports and no barrel index files', () => {
    const files = folders.flatMap((folder) => readdirSync(join(SRC, folder)).map((name) => join(folder, name)));
    expect(files.filter((file) => /(^|\/)index\.ts$/.test(file))).toEqual([]);
    expect(files.filter((file) => /export default/.test(readFileSync(join(SRC, file), 'utf8')))).toEqual([]);
  });
});

/** Every .ts file under src/, relative to it. */
function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name).slice(SRC.length)] : [],
  );
}

/** The production dependencies srvlink loads, transitively: their package folders under node_modules. */
function productionPackages(): string[] {
  const root = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
  const seen = new Set<string>();
  const visit = (from: string, name: string): void => {
    // Node's lookup: the nearest node_modules upwards.
    for (let dir = from; ; dir = dirname(dir)) {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) {
        if (seen.has(candidate)) return;
        seen.add(candidate);
        const manifest = JSON.parse(readFileSync(join(candidate, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
        for (const dep of Object.keys(manifest.dependencies ?? {})) visit(candidate, dep);
        return;
      }
      if (dir.length <= root.length) return;
    }
  };
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(manifest.dependencies)) visit(root, dep);
  expect(seen.size).toBeGreaterThan(Object.keys(manifest.dependencies).length);
  return [...seen];
}

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? (entry.name === 'node_modules' ? [] : jsFiles(join(dir, entry.name))) : /\.(c|m)?js$/.test(entry.name) ? [join(dir, entry.name)] : [],
  );
}

describe('who starts processes (the zombie reaper must know every child Node waits for)', () => {
  it('only src/core/own-children.ts spawns asynchronously; elsewhere only spawnSync and types come from node:child_process', () => {
    const wrong = sourceFiles().flatMap((file) => {
      if (file === 'core/own-children.ts') return [];
      return [...readFileSync(join(SRC, file), 'utf8').matchAll(/import\s*\{([^}]*)\}\s*from\s*'(?:node:)?child_process'/g)]
        .flatMap((match) => (match[1] ?? '').split(',').map((name) => name.trim()))
        .filter((name) => name !== '' && !name.startsWith('type ') && !['spawnSync', 'execFileSync', 'execSync'].includes(name))
        .map((name) => `${file}: ${name}`);
    });
    expect(wrong).toEqual([]);
    // No other way in: a namespace import, a require or a dynamic import.
    const other = sourceFiles().filter((file) => file !== 'core/own-children.ts' && /import \* as \w+ from '(node:)?child_process'|require\('(node:)?child_process'\)|import\('(node:)?child_process'\)/.test(readFileSync(join(SRC, file), 'utf8')));
    expect(other).toEqual([]);
  });

  it('no dependency srvlink runs starts processes, but for commander, and only for executable subcommands srvlink does not declare', () => {
    const spawning = productionPackages().flatMap((pkg) =>
      jsFiles(pkg)
        .filter((file) => /require\(['"](node:)?child_process['"]\)|from ['"](node:)?child_process['"]/.test(readFileSync(file, 'utf8')))
        .map((file) => file.slice(file.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
    expect(spawning).toEqual(['commander/lib/command.js']);
    // commander spawns for `.command(name, description)` and `.executableDir()`: srvlink's commands are all action handlers.
    const cli = sourceFiles().filter((file) => /\.command\(\s*'[^']*'\s*,\s*'|executableDir\(|executableFile/.test(readFileSync(join(SRC, file), 'utf8')));
    expect(cli).toEqual([]);
  });
});
