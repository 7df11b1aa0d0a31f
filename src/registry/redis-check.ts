import { readFile } from 'node:fs/promises';
import { errorMessage } from '../core/errors.js';
import { boundedCheck } from './bounded-check.js';
import type { CheckResult, HealthCheck } from './health-check.js';
import type { ServiceUrl } from './service-url.js';
import { tcpExchange } from './tcp-exchange.js';

/**
 * `redis://HOST[:PORT][?password-file=FILE[&user=NAME]]`: `PING` must answer
 * `+PONG` (a replica that lost its primary with `replica-serve-stale-data no`
 * answers `-MASTERDOWN`, a server still loading its data `-LOADING`: both
 * fail). With a password file, `AUTH [user] password` goes first; the file is
 * read at every run (a rotated secret is picked up) and its content never
 * appears in a reason or a log. `QUIT` ends the exchange, so the server
 * closes the connection itself.
 */
export function redisCheck(target: ServiceUrl, timeout: number): HealthCheck {
  const passwordFile = target.params.get('password-file');
  const user = target.params.get('user');
  return {
    description: `redis://${target.hostPort}${passwordFile === undefined ? '' : ` (AUTH${user === undefined ? '' : ` as ${user}`}, password from ${passwordFile})`}`,
    timeout,
    run: (outer) =>
      boundedCheck(timeout, outer, async (signal, note) => {
        let password: string | undefined;
        if (passwordFile !== undefined) {
          note('reading the password file');
          try {
            // One trailing newline is the file's, not the password's.
            password = (await readFile(passwordFile, { encoding: 'utf8', signal })).replace(/\r?\n$/, '');
          } catch (err) {
            return { ok: false, reason: `cannot read password file "${passwordFile}": ${errorMessage(err)}` };
          }
          note('connecting');
        }
        const commands = [...(password === undefined ? [] : [command(user === undefined ? ['AUTH', password] : ['AUTH', user, password])]), command(['PING']), command(['QUIT'])];
        return tcpExchange({
          host: target.host,
          port: target.port,
          send: Buffer.concat(commands),
          decide: (received, ended) => decideReplies(received, ended, password),
          signal,
          note,
        });
      }),
  };
}

/** A command as a RESP array of bulk strings: safe for any byte in a password. */
function command(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(''), 'utf8');
}

function decideReplies(received: Buffer, ended: boolean, password: string | undefined): CheckResult | undefined {
  const lines = received.toString('utf8').split('\r\n');
  // The last piece is an unfinished line (or empty after a final CRLF).
  const complete = lines.slice(0, -1);
  const shown = (line: string): string => {
    const clean = password === undefined || password === '' ? line : line.split(password).join('***');
    return JSON.stringify(clean.length > 80 ? `${clean.slice(0, 80)}…` : clean);
  };
  let next = 0;
  if (password !== undefined) {
    const auth = complete[next++];
    if (auth === undefined) return ended ? { ok: false, reason: 'closed before answering AUTH' } : undefined;
    if (auth !== '+OK') return { ok: false, reason: `AUTH refused: ${shown(auth)}` };
  }
  const pong = complete[next];
  if (pong === undefined) return ended ? { ok: false, reason: 'closed before answering PING' } : undefined;
  if (pong === '+PONG') return { ok: true, reason: 'PONG' };
  return { ok: false, reason: `PING answered ${shown(pong)}` };
}
