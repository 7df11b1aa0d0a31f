import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Etcd3, IOptions } from 'etcd3';
import type { EtcdConfig } from '../config/etcd-config.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { collect } from './cli-context.js';

/** The etcd flags every command that talks to etcd has. */
export function withEtcdOptions(command: Command, description = 'etcd client URL, repeatable or comma-separated'): Command {
  return command
    .addOption(new Option('--etcd <urls>', description).env('SRVLINK_ETCD').argParser(collect))
    .addOption(new Option('--etcd-cacert <file>', 'CA of etcd\'s TLS certificate').env('SRVLINK_ETCD_CACERT'))
    .addOption(new Option('--etcd-cert <file>', 'client certificate for etcd').env('SRVLINK_ETCD_CERT'))
    .addOption(new Option('--etcd-key <file>', 'key of the client certificate').env('SRVLINK_ETCD_KEY'))
    .addOption(new Option('--etcd-user <name>', 'etcd user (password: SRVLINK_ETCD_PASSWORD or --etcd-password-file)').env('SRVLINK_ETCD_USER'))
    .addOption(new Option('--etcd-password-file <file>', 'file holding the etcd password').env('SRVLINK_ETCD_PASSWORD_FILE'));
}

/**
 * An etcd client for `config`: TLS material and the password read here, at
 * start, so a missing file is a clear configuration error (exit 2). The
 * password is never logged (the logger strips credentials from every URL it
 * writes, `redactUrl`); one given in an endpoint URL is used as the auth.
 * etcd3 (with gRPC and protobuf) and cockatiel are loaded here, on first
 * use: a process without etcd never pays for them.
 */
export async function createEtcdClient(config: EtcdConfig, env: NodeJS.ProcessEnv): Promise<Etcd3> {
  const [{ Etcd3 }, { etcdFaultHandling }] = await Promise.all([import('etcd3'), import('./etcd-fault-handling.js')]);
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read ${what} "${file}": ${errorMessage(err)}`);
    }
  };
  // Credentials in a URL (`http://user:password@host:2379`) are auth, not part of the address:
  // gRPC would take them for a host name. Taken out here; --etcd-user, when given, wins.
  const urls = config.endpoints.map((endpoint) => new URL(endpoint));
  const inUrl = urls.find((url) => url.username !== '');
  const options: IOptions = {
    hosts: urls.map((url) => `${url.protocol}//${url.host}`),
    dialTimeout: 3000,
    faultHandling: etcdFaultHandling(),
    // Notice a connection that died silently (a member cut off without a reset).
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000 },
  };
  if (config.tls) {
    options.credentials = {
      rootCertificate: read(config.tls.ca, '--etcd-cacert'),
      ...(config.tls.cert !== undefined ? { certChain: read(config.tls.cert, '--etcd-cert') } : {}),
      ...(config.tls.key !== undefined ? { privateKey: read(config.tls.key, '--etcd-key') } : {}),
    };
  }
  if (config.user !== undefined) {
    const password = config.passwordFile !== undefined ? read(config.passwordFile, '--etcd-password-file').toString('utf8').trim() : env.SRVLINK_ETCD_PASSWORD;
    if (password === undefined) throw new ConfigError('missing etcd password for --etcd-user: set SRVLINK_ETCD_PASSWORD or give --etcd-password-file');
    options.auth = { username: config.user, password };
  } else if (inUrl !== undefined) {
    options.auth = { username: decodeURIComponent(inUrl.username), password: decodeURIComponent(inUrl.password) };
  }
  return new Etcd3(options);
}
