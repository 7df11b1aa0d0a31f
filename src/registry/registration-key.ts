import { MAX_LABEL_OCTETS, MAX_NAME_LENGTH, hostLabelProblem, relativeName } from '../core/dns-name.js';
import { DEFAULT_SKYDNS_PREFIX, nameToKey } from '../skydns-model/key-path.js';
import { fieldError, type FieldProblem } from '../core/field-problem.js';

export interface RegistrationKeyOptions {
  /** Where the SkyDNS records live. Default `/skydns` (CoreDNS plugin/etcd `path`). */
  prefix?: string;
  /** The environment domain the instance belongs to, e.g. `env1.skydns.local`. */
  domain: string;
  /** The service name without its `_`, e.g. `zookeeper`. */
  service: string;
  /** This instance's id, a DNS label. */
  instance: string;
}

/** The fields of a registration key. */
export type RegistrationKeyField = 'service' | 'instance' | 'domain';

/**
 * Why `options` cannot make a registration key, or undefined: the service or
 * the instance is not a host label, the domain not a name of host labels, or
 * the registered name is longer than DNS allows. `config/` calls it to word
 * the message with the flag; `registrationKey` checks it again as an invariant.
 */
export function registrationKeyProblem(options: RegistrationKeyOptions): FieldProblem<RegistrationKeyField> | undefined {
  const { domain, service, instance } = options;
  const serviceProblem = hostLabelProblem(service);
  if (serviceProblem !== undefined) {
    const hint = service.startsWith('_') ? 'give it without the leading "_", srvlink adds it' : labelRule('zookeeper');
    return { field: 'service', value: service, problem: `${serviceProblem}; ${hint}` };
  }
  const instanceProblem = hostLabelProblem(instance);
  if (instanceProblem !== undefined) return { field: 'instance', value: instance, problem: `${instanceProblem}; ${labelRule('zk1')}` };
  const trimmedDomain = relativeName(domain);
  const bad = trimmedDomain.split('.').find((label) => hostLabelProblem(label) !== undefined);
  if (bad !== undefined) {
    const why = trimmedDomain === '' ? 'empty' : `label "${bad}": ${hostLabelProblem(bad)}`;
    return { field: 'domain', value: domain, problem: `${why}; expected a DNS name such as env1.skydns.local` };
  }
  const name = registeredName(options);
  if (name.length > MAX_NAME_LENGTH) {
    return { field: 'domain', value: domain, problem: `the registered name "${name}" is ${name.length} characters long, DNS allows at most ${MAX_NAME_LENGTH}` };
  }
  return undefined;
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
 * Throws an `InvalidArgumentError` naming the field when
 * `registrationKeyProblem` finds one (user input is checked before, in `config/`).
 */
export function registrationKey(options: RegistrationKeyOptions): string {
  const bad = registrationKeyProblem(options);
  if (bad !== undefined) throw fieldError(bad);
  return nameToKey(registeredName(options), options.prefix ?? DEFAULT_SKYDNS_PREFIX);
}

function registeredName({ domain, service, instance }: RegistrationKeyOptions): string {
  return `${instance}._${service}._tcp.${relativeName(domain)}`;
}

function labelRule(example: string): string {
  return `expected a DNS label: letters, digits and inner hyphens, at most ${MAX_LABEL_OCTETS} characters (e.g. ${example})`;
}
