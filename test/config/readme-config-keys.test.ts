import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../../src/cli/run-command.js';
import { configFileKeys } from '../../src/config/layer-settings.js';
import { RESTART_SETTINGS } from '../../src/config/reload-plan.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The README's section on config-file keys, up to the next heading. */
function section(title: string): string {
  const start = README.indexOf(`### ${title}`);
  expect(start, `README has a "### ${title}" section`).toBeGreaterThanOrEqual(0);
  const end = README.indexOf('\n#', start + 4);
  return README.slice(start, end === -1 ? undefined : end);
}

const quiet = { write: () => true };
const command = runCommand({ stdout: quiet, stderr: quiet, env: {}, waitForSignal: () => new Promise(() => undefined), onSignal: () => () => undefined }, () => undefined);
/** run's own options, and the program-wide log settings the file also takes. */
const keys = [...configFileKeys(command.options.map((option) => option.long)), 'log-level', 'log-format'];

describe('the README documents the config file', () => {
  it('has a table row for every key srvlink run accepts in a config file', () => {
    const text = section('Configuration file keys');
    const rows = [...text.matchAll(/^\| `([a-z-]+)` \|/gm)].map((match) => match[1]);
    expect(keys.length).toBeGreaterThan(30);
    expect(rows.sort()).toEqual([...keys].sort());
  });

  it('names every setting a reload cannot change', () => {
    const text = section('Configuration file keys');
    const restart = text.slice(text.indexOf('until a restart'));
    for (const { key } of RESTART_SETTINGS) expect(restart, key).toContain(`\`${key}\``);
  });

  it('describes the resolv.conf it writes by the marker srvlink really uses', () => {
    expect(section('The resolv.conf srvlink writes')).toContain('# srvlink original: nameserver');
  });
});
