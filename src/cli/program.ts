import { Command, CommanderError } from 'commander';
import { cliLogger, ExitCode, processIo, withCommonOptions, type CliIo } from './cli-context.js';

/** Version printed by `srvlink --version`. */
export const VERSION = '0.1.0';

type CommandFactory = (io: CliIo, setExit: (code: number) => void) => Command;

/**
 * The commands, in the order `srvlink --help` lists them, each module loaded
 * only when the command is built: an idle `srvlink run` carries no code of
 * the other commands.
 */
const COMMANDS: Readonly<Record<string, () => Promise<CommandFactory>>> = {
  run: async () => (await import('./run-command.js')).runCommand,
  register: async () => (await import('./register-command.js')).registerCommand,
  dns: async () => (await import('./dns-command.js')).dnsCommand,
  resolve: async () => (await import('./resolve-command.js')).resolveCommand,
  status: async () => (await import('./status-command.js')).statusCommand,
};

/**
 * The commands to build for `argv`: the one it names, or every one (for
 * `--help`, `help`, `--version`, no command or a mistyped one, whose "did
 * you mean" needs every name). Options of the program itself come before
 * the command (positional options), so the command is the first argument.
 */
function commandsFor(argv: readonly string[]): string[] {
  const first = argv[2];
  return first !== undefined && Object.hasOwn(COMMANDS, first) ? [first] : Object.keys(COMMANDS);
}

/**
 * Parse `argv` (as `process.argv`: node, script, args...) and run the chosen
 * command. Resolves with the process exit code: 0 success, 1 runtime
 * failure, 2 usage or configuration error (docs/architecture.md §3).
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let exitCode: number = ExitCode.OK;
  const setExit = (code: number): void => {
    exitCode = code;
  };
  const log = cliLogger(io);
  const program = new Command('srvlink')
    .description(
      'Reach services on dynamically assigned ports through plain local ports and names, ' +
        'using DNS SRV records kept in etcd in the SkyDNS layout.',
    )
    .version(VERSION)
    // stderr is one JSON object per line, the parser's errors included: the message as `msg`,
    // the usage text shown for a missing command as one field.
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => {
        const text = s.trim();
        // Commander writes here the help of a command called without a subcommand, and nothing else.
        if (text !== '') log.error(text.startsWith('Usage:') ? 'missing command' : text, text.startsWith('Usage:') ? { exitCode: ExitCode.USAGE, usage: text } : { exitCode: ExitCode.USAGE });
      },
      outputError: (s) => log.error(s.trim().replace(/^error: /, ''), { exitCode: ExitCode.USAGE, hint: 'add --help for usage' }),
    })
    .exitOverride()
    .enablePositionalOptions();
  const factories = await Promise.all(commandsFor(argv).map((name) => (COMMANDS[name] as () => Promise<CommandFactory>)()));
  for (const factory of factories) {
    // Output, exit override and help-after-error apply to every command.
    program.addCommand(withCommonOptions(factory(io, setExit).copyInheritedSettings(program)));
  }
  program.addHelpText(
    'after',
    `
Examples:
  srvlink run --domain env1.skydns.local --cluster-dns 10.0.0.2 --map 2181=zookeeper
  srvlink register --etcd http://10.0.0.5:2379 --domain env1.skydns.local --service web --port '$PORT0'
  srvlink dns --listen 127.0.0.1:5353 --etcd http://10.0.0.5:2379
  srvlink resolve zookeeper --domain env1.skydns.local --cluster-dns 127.0.0.1:5353
  srvlink status                      # what the srvlink run on this host is doing

Every command has --help with its options and examples.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.`,
  );
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; every other parse error is a usage error.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    throw err;
  }
  return exitCode;
}
