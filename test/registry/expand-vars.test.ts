import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { expandVars } from '../../src/registry/expand-vars.js';

const env = { PORT0: '31001', HOST: '10.0.0.5', _X1: 'x', EMPTY: '' };

describe('expandVars', () => {
  it.each([
    ['$PORT0', '31001'],
    ['${PORT0}', '31001'],
    ['$HOST:$PORT0', '10.0.0.5:31001'],
    ['${HOST}0', '10.0.0.50'],
    ['$_X1-y', 'x-y'],
    ['8080', '8080'],
    ['', ''],
    ['$$PORT0', '$PORT0'],
    ['a$$', 'a$'],
  ])('%s → %s', (value, expanded) => {
    expect(expandVars(value, env, '--port')).toBe(expanded);
  });

  it.each([
    ['$PORT1', '--port', 'invalid --port "$PORT1": environment variable "PORT1" is not set'],
    ['${PORT1}', '--port', 'invalid --port "${PORT1}": environment variable "PORT1" is not set'],
    ['$EMPTY', '--host', 'invalid --host "$EMPTY": environment variable "EMPTY" is empty'],
    ['$', '--port', 'invalid --port "$": "$" must be followed by a variable name'],
    ['$1', '--port', 'invalid --port "$1": "$" must be followed by a variable name'],
    ['${PORT0', '--port', 'invalid --port "${PORT0": "${" without its closing "}"'],
    ['${}', '--port', 'invalid --port "${}": "${}" is not a variable name'],
    ['${A-B}', '--port', 'invalid --port "${A-B}": "${A-B}" is not a variable name'],
  ])('%s (%s) → ConfigError %s', (value, what, message) => {
    expect(() => expandVars(value, env, what)).toThrow(ConfigError);
    expect(() => expandVars(value, env, what)).toThrow(message);
  });

  it('reads only the environment it is given', () => {
    process.env.SRVLINK_TEST_ONLY_IN_PROCESS_ENV = '1';
    try {
      expect(() => expandVars('$SRVLINK_TEST_ONLY_IN_PROCESS_ENV', {}, '--port')).toThrow('is not set');
    } finally {
      delete process.env.SRVLINK_TEST_ONLY_IN_PROCESS_ENV;
    }
  });
});
