import { MAX_LABEL_OCTETS, MAX_NAME_LENGTH, hostLabelProblem } from '../core/dns-name.js';
import { ConfigError } from '../core/errors.js';
import { DEFAULT_SKYDNS_PREFIX, nameToKey } from '../discovery/key-path.js';

export interface RegistrationKeyOptions {
  /** Where the SkyDNS records live. Default `/skydns` (CoreDNS plugin/etcd `path`). */
  prefix?: string;
  /** The environment domain the instance belongs to (`--domain`), e.g. `env1.skydns.local`. */
  domain: string;
  /** The service name without its `_` (`--service`), e.g. `zookeeper`. */
  service: string;
  /** This instance's id (`--instance`), a DNS label. */
  instance: string;
}

/**
 * The etcd key one service instance registers under (docs/architecture.md §4.4): the
 * name `<instance>._<service>._tcp.<domain>` in the SkyDNS layout, i.e.
 * `/skydns/<domain labels reversed>/_tcp/_<service>/<instance>`, all lower
 * case. A query for `_<service>._tcp.<domain>` then answers from this key
 * (it is in that name's subtree, §4.5).
 *
 * `{ domain: 'env1.skydns.local', service: 'zookeeper', instance: 'zk1' }`
 * → `/skydns/local/skydns/env1/_tcp/_zookeeper/zk1`.
 *
 * Throws a `ConfigError` naming the flag and its value when the service or
 * the instance is not a DNS label, or the domain not a DNS name.
 */
export function registrationKey(options: RegistrationKeyOptions): string {
  const { domain, service, instance } = options;
  const serviceProblem = hostLabelProblem(service);
  if (serviceProblem !== undefined) {
    const hint = service.startsWith('_') ? 'give it without the leading "_", srvlink adds it' : labelRule('zookeeper');
    throw new ConfigError(`invalid --service "${service}": ${serviceProblem}; ${hint}`);
  }
  const instanceProblem = hostLabelProblem(instance);
  if (instanceProblem !== undefined) {
    throw new ConfigError(`invalid --instance "${instance}": ${instanceProblem}; ${labelRule('zk1')}`);
  }
  const trimmedDomain = domain.endsWith('.') ? domain.slice(0, -1) : domain;
  const domainLabels = trimmedDomain.split('.');
  const bad = domainLabels.find((label) => hostLabelProblem(label) !== undefined);
  if (bad !== undefined) {
    const why = trimmedDomain === '' ? 'empty' : `label "${bad}": ${hostLabelProblem(bad)}`;
    throw new ConfigError(`invalid --domain "${domain}": ${why}; expected a DNS name such as env1.skydns.local`);
  }
  const name = `${instance}._${service}._tcp.${trimmedDomain}`;
  if (name.length > MAX_NAME_LENGTH) {
    throw new ConfigError(
      `invalid --domain "${domain}": the registered name "${name}" is ${name.length} characters long, DNS allows at most ${MAX_NAME_LENGTH}`,
    );
  }
  return nameToKey(name, options.prefix ?? DEFAULT_SKYDNS_PREFIX);
}

function labelRule(example: string): string {
  return `expected a DNS label: letters, digits and inner hyphens, at most ${MAX_LABEL_OCTETS} characters (e.g. ${example})`;
}
