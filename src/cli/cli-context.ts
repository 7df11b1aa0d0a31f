import { Option, type Command } from 'commander';
import { ConfigError, errorMessage } from '../core/errors.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from '../core/logger.js';
import type { LayeredValue } from '../config/layer-settings.js';
import { describeSource, flagName, type OptionSource } from '../config/option-source.js';

/** Exit codes (docs/architecture.md §3). */
export const ExitCode = { OK: 0, FAILURE: 1, USAGE: 2 } as const;

/** What a command may touch of the outside world; tests pass their own. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
  /** Resolves with the name of the first of `signals` the process receives. */
  waitForSignal(signals: readonly NodeJS.Signals[]): Promise<NodeJS.Signals>;
  /** Calls `handler` every time `signal` arrives, until the returned function is called. */
  onSignal(signal: NodeJS.Signals, handler: () => void): () => void;
}

/** The real process's streams, environment and signals. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    waitForSignal: (signals) =>
      new Promise((resolve) => {
        const on = (signal: NodeJS.Signals): void => {
          for (const s of signals) process.off(s, on);
          resolve(signal);
        };
        for (const s of signals) process.on(s, on);
      }),
    onSignal: (signal, handler) => {
      const on = (): void => handler();
      process.on(signal, on);
      return () => void process.off(signal, on);
    },
  };
}

/** An option that can also come from environment variable `env`. */
export function envOption(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

/** Options every command has. */
export function withCommonOptions(command: Command): Command {
  return command
    .addOption(new Option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`).env('SRVLINK_LOG_LEVEL').default('info'))
    .addOption(new Option('--log-format <format>', 'log lines: json (one object per line) or text (readable)').env('SRVLINK_LOG_FORMAT').default('json'));
}

/**
 * `--log-level` and `--log-format` as layered from flags, SRVLINK_* and a
 * config file (`run --config`); without them, what commander parsed.
 */
export interface LogSettings {
  logLevel?: LayeredValue | undefined;
  logFormat?: LayeredValue | undefined;
}

/** A logger at the level and in the format of `--log-level` and `--log-format` (or their variables, or the config file), writing to the io's stderr. */
export function commandLogger(io: CliIo, command: Command, settings: LogSettings = {}): Logger {
  return createLogger({ level: logLevel(command, settings), format: logFormat(command, settings), write: (line) => void io.stderr.write(line) });
}

/** The value of `--log-level` (or SRVLINK_LOG_LEVEL, or the config file), checked. */
export function logLevel(command: Command, settings: LogSettings = {}): LogLevel {
  return logSetting(command, settings.logLevel, 'logLevel', 'info', LOG_LEVELS) as LogLevel;
}

/** The value of `--log-format` (or SRVLINK_LOG_FORMAT, or the config file), checked. */
export function logFormat(command: Command, settings: LogSettings = {}): LogFormat {
  return logSetting(command, settings.logFormat, 'logFormat', 'json', LOG_FORMATS) as LogFormat;
}

function logSetting(command: Command, layered: LayeredValue | undefined, attribute: 'logLevel' | 'logFormat', fallback: string, allowed: readonly string[]): string {
  const value = layered ? layered.value : ((command.opts() as Record<string, unknown>)[attribute] ?? fallback);
  if (typeof value !== 'string' || !allowed.includes(value)) {
    const what = layered ? describeSource(layered.source) : `--${flagName(attribute)}`;
    throw new ConfigError(`invalid ${what} "${String(value)}": expected one of ${allowed.join(', ')}`);
  }
  return value;
}

/**
 * The logger for what the CLI itself says on stderr (a failed command, a
 * usage error from the parser): the same one-JSON-object-per-line format as
 * every command's log, so that stderr is one format throughout.
 */
export function cliLogger(io: CliIo): Logger {
  return createLogger({ write: (line) => void io.stderr.write(line) });
}

/** Where each option of `command` got its value, for error messages that name what the user typed. */
export function optionSources(command: Command): Record<string, OptionSource> {
  const sources: Record<string, OptionSource> = {};
  for (const option of command.options) {
    const key = option.attributeName();
    const from = command.getOptionValueSource(key);
    const source: OptionSource = { flag: option.long ?? option.flags, from: from === 'env' ? 'env' : from === 'cli' ? 'cli' : from === 'config' ? 'config' : 'default' };
    if (option.envVar) source.env = option.envVar;
    sources[key] = source;
  }
  return sources;
}

/**
 * Run a command's body at the CLI boundary: a `ConfigError` becomes exit code 2,
 * any other failure exit code 1, each with one log line on stderr (`cliLogger`)
 * whose `msg` is the error's message.
 */
export async function runGuarded(io: CliIo, name: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    const exitCode = err instanceof ConfigError ? ExitCode.USAGE : ExitCode.FAILURE;
    const code = (err as { code?: unknown } | undefined)?.code;
    cliLogger(io).error(errorMessage(err), { command: name, exitCode, ...(typeof code === 'string' ? { code } : {}) });
    return exitCode;
  }
}

/** Collect a repeatable option's values. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
