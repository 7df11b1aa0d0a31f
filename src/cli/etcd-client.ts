import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Etcd3, IOptions } from 'etcd3';
import type { EtcdConfig } from '../config/etcd-config.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { EtcdGateway } from '../registry/etcd-gateway.js';
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

/** What connecting to etcd takes, read from `config` and the environment: the same for both clients. */
interface EtcdConnection {
  /** `http(s)://HOST:PORT`, credentials taken out. */
  readonly hosts: string[];
  readonly tls: { ca: Buffer; cert: Buffer | undefined; key: Buffer | undefined } | undefined;
  readonly auth: { username: string; password: string } | undefined;
}

/**
 * TLS material and the password read here, at start, so a missing file is a
 * clear configuration error (exit 2). The password is never logged (the
 * logger strips credentials from every URL it writes, `redactUrl`); one
 * given in an endpoint URL is used as the auth.
 */
function etcdConnection(config: EtcdConfig, env: NodeJS.ProcessEnv): EtcdConnection {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read ${what} "${file}": ${errorMessage(err)}`);
    }
  };
  // Credentials in a URL (`http://user:password@host:2379`) are auth, not part of the address:
  // a client would take them for a host name. Taken out here; --etcd-user, when given, wins.
  const urls = config.endpoints.map((endpoint) => new URL(endpoint));
  const inUrl = urls.find((url) => url.username !== '');
  const tls = config.tls
    ? {
        ca: read(config.tls.ca, '--etcd-cacert'),
        cert: config.tls.cert !== undefined ? read(config.tls.cert, '--etcd-cert') : undefined,
        key: config.tls.key !== undefined ? read(config.tls.key, '--etcd-key') : undefined,
      }
    : undefined;
  let auth: EtcdConnection['auth'];
  if (config.user !== undefined) {
    const password = config.passwordFile !== undefined ? read(config.passwordFile, '--etcd-password-file').toString('utf8').trim() : env.SRVLINK_ETCD_PASSWORD;
    if (password === undefined) throw new ConfigError('missing etcd password for --etcd-user: set SRVLINK_ETCD_PASSWORD or give --etcd-password-file');
    auth = { username: config.user, password };
  } else if (inUrl !== undefined) {
    auth = { username: decodeURIComponent(inUrl.username), password: decodeURIComponent(inUrl.password) };
  }
  return { hosts: urls.map((url) => `${url.protocol}//${url.host}`), tls, auth };
}

/**
 * An etcd3 client (gRPC) for `config`, for what watches: the zone of `srvlink
 * dns` and of etcd discovery. etcd3 (with gRPC and protobuf) and cockatiel
 * are loaded here, on first use: a process without etcd never pays for them.
 */
export async function createEtcdClient(config: EtcdConfig, env: NodeJS.ProcessEnv): Promise<Etcd3> {
  const connection = etcdConnection(config, env);
  const [{ Etcd3 }, { etcdFaultHandling }] = await Promise.all([import('etcd3'), import('./etcd-fault-handling.js')]);
  const options: IOptions = {
    hosts: connection.hosts,
    dialTimeout: 3000,
    faultHandling: etcdFaultHandling(),
    // Notice a connection that died silently (a member cut off without a reset).
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000 },
  };
  if (connection.tls) {
    options.credentials = {
      rootCertificate: connection.tls.ca,
      ...(connection.tls.cert !== undefined ? { certChain: connection.tls.cert } : {}),
      ...(connection.tls.key !== undefined ? { privateKey: connection.tls.key } : {}),
    };
  }
  if (connection.auth) options.auth = connection.auth;
  return new Etcd3(options);
}

/**
 * A client of etcd's JSON gateway for `config`, for registrations: leases,
 * puts and keepalives are a few small calls, which need no gRPC (~10 MB
 * less for a `srvlink register`).
 */
export function createRegistryClient(config: EtcdConfig, env: NodeJS.ProcessEnv): EtcdGateway {
  const connection = etcdConnection(config, env);
  return new EtcdGateway({ endpoints: connection.hosts, tls: connection.tls, auth: connection.auth });
}
