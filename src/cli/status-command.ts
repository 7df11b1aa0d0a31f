import { Command } from 'commander';
import { request } from 'node:http';
import { formatHostPort, parseHostPort, type HostPort } from '../core/host-port.js';
import { SrvlinkError, errorMessage } from '../core/errors.js';
import type { AdminSnapshot } from '../admin/admin-source.js';
import { formatStatus } from '../admin/format-status.js';
import { ExitCode, envOption, optionSources, runGuarded, type CliIo } from './cli-context.js';
import { describeSource } from '../config/option-source.js';

/** How long `srvlink status` waits for the admin endpoint. */
const STATUS_TIMEOUT_MS = 5000;

/** `srvlink status`: what a running srvlink is doing, from its admin endpoint's `/status`. */
export function statusCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command('status')
    .summary('show what a running srvlink is doing (its admin endpoint\'s /status)')
    .description(
      'Ask a running srvlink (run, dns or register) for its state through its admin endpoint and print it: one block per mapping with its backends in failover order (priority, then weight) and their state (up, failures, ejected), the DNS stub\'s cache and upstreams, registrations and the supervised child.',
    )
    .addOption(envOption('--admin <addr:port>', 'the admin endpoint to ask', 'SRVLINK_ADMIN').default('127.0.0.1:9053'))
    .option('--json', 'print /status as JSON, unchanged')
    .addHelpText(
      'after',
      `
Examples:
  srvlink status
  srvlink status --admin 127.0.0.1:9100 --json | jq '.mappings[].backends'

Exit codes: 0 printed, 1 nothing answers at the address, 2 bad usage.`,
    )
    .action(async (_options: unknown, cmd: Command) => {
      setExit(
        await runGuarded(io, 'status', async () => {
          const opts = cmd.opts() as { admin: string; json?: boolean };
          const source = optionSources(cmd).admin;
          const admin = parseHostPort(opts.admin, source ? describeSource(source) : '--admin');
          const body = await fetchStatus(admin);
          if (opts.json) {
            io.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
            return ExitCode.OK;
          }
          let status: AdminSnapshot;
          try {
            status = JSON.parse(body) as AdminSnapshot;
          } catch (err) {
            throw new SrvlinkError('ERR_STATUS', `cannot read the status of "${formatHostPort(admin)}": ${errorMessage(err)}`);
          }
          io.stdout.write(formatStatus(status));
          return ExitCode.OK;
        }),
      );
    });
}

/** GET /status; rejects with one line when nothing answers or the answer is not a status. */
function fetchStatus(admin: HostPort): Promise<string> {
  const where = formatHostPort(admin);
  return new Promise((resolve, reject) => {
    const req = request({ host: admin.host, port: admin.port, path: '/status', timeout: STATUS_TIMEOUT_MS, headers: { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err) => reject(new SrvlinkError('ERR_STATUS', `cannot read the status of "${where}": ${errorMessage(err)}`)));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new SrvlinkError('ERR_STATUS', `cannot get the status of "${where}": HTTP ${res.statusCode ?? '?'}`));
        else resolve(body);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${STATUS_TIMEOUT_MS} ms`)));
    req.on('error', (err) =>
      reject(new SrvlinkError('ERR_STATUS', `cannot get the status of "${where}": ${(err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'nothing listens there (is srvlink running with --admin?)' : errorMessage(err)}`)),
    );
    req.end();
  });
}
