import { ConfigError } from '../core/errors.js';

/** The environment variables `expandVars` may read: injected, never `process.env` itself (the CLI owns it). */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Expand `$NAME` and `${NAME}` in a flag value from `env` (docs/architecture.md §4.4:
 * platforms hand out dynamic ports in variables, `--port '$PORT0'`). `$$` is
 * a literal `$`. NAME is a shell variable name: a letter or `_`, then
 * letters, digits or `_`.
 *
 * Throws a `ConfigError` naming the flag (`what`, e.g. `--port`), its value
 * and the variable when a variable is unset or empty (an empty host or port
 * is never meant), or when a `$` starts nothing it can expand.
 */
export function expandVars(value: string, env: Environment, what: string): string {
  const fail = (why: string): never => {
    throw new ConfigError(`invalid ${what} "${value}": ${why}`);
  };
  return value.replace(/\$(?:\$|\{([^}]*)\}?|([A-Za-z_][A-Za-z0-9_]*)|)/g, (match: string, braced: string | undefined, bare: string | undefined) => {
    if (match === '$$') return '$';
    if (braced !== undefined) {
      if (!match.endsWith('}')) fail('"${" without its closing "}"');
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(braced)) fail(`"\${${braced}}" is not a variable name`);
    }
    const name = bare ?? braced;
    if (name === undefined) return fail('"$" must be followed by a variable name, "{NAME}" or another "$"');
    const expanded = env[name];
    if (expanded === undefined) return fail(`environment variable "${name}" is not set`);
    if (expanded === '') return fail(`environment variable "${name}" is empty`);
    return expanded;
  });
}
