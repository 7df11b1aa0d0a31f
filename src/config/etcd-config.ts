import { ConfigError } from '../core/errors.js';
import { describeSource, splitList, type OptionSource } from './option-source.js';

/** How to reach etcd: the same flags for every command that talks to it (docs/architecture.md §4.4). */
export interface EtcdConfig {
  /** Client URLs (`http://10.0.0.5:2379`, `https://...`). */
  readonly endpoints: readonly string[];
  /** Files of the TLS CA, client certificate and key, when given. */
  readonly tls: { readonly ca: string; readonly cert: string | undefined; readonly key: string | undefined } | undefined;
  /** User for etcd's auth; the password comes from SRVLINK_ETCD_PASSWORD or --etcd-password-file. */
  readonly user: string | undefined;
  readonly passwordFile: string | undefined;
}

export interface EtcdInput {
  etcd?: string[] | string;
  etcdCacert?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

/** Validate the etcd flags (pure). `required`: the command cannot work without an endpoint. */
export function parseEtcdConfig(input: EtcdInput, sources: Partial<Record<keyof EtcdInput, OptionSource>> = {}, required = true): EtcdConfig | undefined {
  const name = (key: keyof EtcdInput, flag: string): string => describeSource(sources[key] ?? { flag, from: 'cli' });
  const endpoints = splitList(input.etcd);
  if (endpoints.length === 0) {
    if (!required) return undefined;
    throw new ConfigError(`missing ${name('etcd', '--etcd')}: etcd client URLs, e.g. --etcd http://127.0.0.1:2379`);
  }
  for (const endpoint of endpoints) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new ConfigError(`invalid ${name('etcd', '--etcd')} "${endpoint}": expected a URL like http://127.0.0.1:2379`);
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.port === '' || url.pathname !== '/') {
      throw new ConfigError(`invalid ${name('etcd', '--etcd')} "${endpoint}": expected http(s)://HOST:PORT`);
    }
  }
  const tlsWanted = endpoints.some((e) => e.startsWith('https:'));
  if ((input.etcdCert === undefined) !== (input.etcdKey === undefined)) {
    throw new ConfigError('invalid --etcd-cert/--etcd-key: a client certificate needs its key, and the key its certificate');
  }
  if ((input.etcdCert !== undefined || tlsWanted) && input.etcdCacert === undefined) {
    throw new ConfigError(`missing ${name('etcdCacert', '--etcd-cacert')}: https endpoints and client certificates need the CA that signed etcd's certificate`);
  }
  if (input.etcdPasswordFile !== undefined && input.etcdUser === undefined) {
    throw new ConfigError('invalid --etcd-password-file: give --etcd-user too');
  }
  return Object.freeze({
    endpoints: Object.freeze(endpoints),
    tls: input.etcdCacert === undefined ? undefined : Object.freeze({ ca: input.etcdCacert, cert: input.etcdCert, key: input.etcdKey }),
    user: input.etcdUser,
    passwordFile: input.etcdPasswordFile,
  });
}
