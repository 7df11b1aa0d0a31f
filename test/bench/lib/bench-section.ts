import type { ProcessGroup } from './process-group.js';

/** What a section is given: where things are, how many rounds, its own processes and scratch directory. */
export interface BenchContext {
  /** Rounds per measurement (ROUNDS, default 3); each reports the median and the range. */
  readonly rounds: number;
  /** Shorter runs (QUICK=1): to try the harness, not to quote. */
  readonly quick: boolean;
  /** The repository. */
  readonly root: string;
  /** srvlink's executable (dist/main.js). */
  readonly srvlink: string;
  /** A scratch directory of this section, removed afterwards. */
  readonly work: string;
  /** The section's processes, all stopped when it ends. */
  readonly processes: ProcessGroup;
  /** Progress on stderr. */
  log(message: string): void;
  /** A C program of test/bench/ compiled with cc -O2, by name (`conn-client`, `echo-server`). */
  binary(name: string): Promise<string>;
  /** `srvlink <command> --help`, to find flags that may not exist yet. */
  help(command: string): Promise<string>;
}

/** One line of the summary: srvlink against the alternative measured in the same run. */
export interface Ratio {
  readonly what: string;
  readonly srvlink: string;
  readonly alternative: string;
  /** srvlink / alternative, of the medians; NaN when one side is missing. */
  readonly ratio: number;
  /** The goal, e.g. "≥ 1.1×" ("≤ 0.75×" for a cost, "≤ 1 ms" for an absolute bound); empty when there is none. */
  readonly goal: string;
  /** Whether the goal is met, when the goal is not a bound on `ratio` (an absolute one). */
  readonly met?: boolean;
}

export interface SectionResult {
  /** The section's text in RESULTS.md: tables and notes, without the heading. */
  readonly markdown: string;
  readonly ratios: readonly Ratio[];
}

/**
 * A file of test/bench/sections/ exports one of these; `make bench
 * SECTIONS=name,...` runs some, the runner runs all in `order`.
 */
export interface BenchSection {
  /** Short key for SECTIONS. */
  readonly name: string;
  readonly title: string;
  readonly order: number;
  run(context: BenchContext): Promise<SectionResult>;
}

/** Whether the goal text ("≥ 1.1×", "≤ 0.75×") holds for `ratio`; undefined when there is no goal or value. */
export function goalMet(ratio: number, goal: string): boolean | undefined {
  const match = /^([≥≤])\s*([\d.]+)/.exec(goal);
  if (!match || !Number.isFinite(ratio)) return undefined;
  const bound = Number(match[2]);
  return match[1] === '≥' ? ratio >= bound : ratio <= bound;
}

/** A Markdown table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}
