/**
 * Imports point one way (docs/architecture.md §4): cli → features → discovery → dns → core.
 * A feature does not import another feature; what two share moves down.
 * This reads the import lines of src/ and keeps that true.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const FEATURES = ['stub', 'proxy', 'skydns', 'registry', 'supervisor', 'admin'];

/** Which top-level folders of src/ each folder may import from (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  dns: ['core'],
  discovery: ['dns', 'core'],
  ...Object.fromEntries(FEATURES.map((feature) => [feature, ['discovery', 'dns', 'core']])),
  // Config validates with the pure parsers of the layers below and of the registry.
  config: ['registry', 'discovery', 'dns', 'core'],
  demo: ['skydns', 'core'],
  cli: ['config', ...FEATURES, 'discovery', 'dns', 'core'],
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
