import { InvalidArgumentError } from './errors.js';

/**
 * What is wrong with one field of what a part is given (a registration key,
 * a record value), named by the field (`service`, `host`), not by a flag:
 * only `config/` knows whether the user typed `--service`, `--register
 * "web:80"` or a config file key, and words the message with that.
 */
export interface FieldProblem<Field extends string> {
  readonly field: Field;
  /** The value as given. */
  readonly value: string;
  /** Why it cannot be used and what is expected: `holds "_"; expected a DNS label ...`. */
  readonly problem: string;
}

/** The invariant failed: a caller skipped the check of `config/`. */
export function fieldError(bad: FieldProblem<string>): InvalidArgumentError {
  return new InvalidArgumentError(`invalid ${bad.field} "${bad.value}": ${bad.problem}`);
}
