import { ConfigError } from '../core/errors.js';
import { canonicalName, isHostLabel, isServiceLabel } from '../core/dns-name.js';

/**
 * The SRV name a SERVICE argument stands for (docs/architecture.md §3), fully qualified, lower case:
 * - `zookeeper` → `_zookeeper._tcp.<domain>.`
 * - `zookeeper.env2` → `_zookeeper._tcp.env2.<parent of domain>.` (another environment)
 * - `_zookeeper._tcp.env1.skydns.local` → itself (a full SRV name starts with `_`).
 */
export function serviceSrvName(service: string, domain: string): string {
  const fail = (why: string): never => {
    throw new ConfigError(`invalid service "${service}": ${why}; expected NAME, NAME.ENVIRONMENT or a full SRV name like _NAME._tcp.DOMAIN`);
  };
  const text = canonicalName(service.trim());
  if (text === '') fail('empty');
  const labels = text.split('.');
  if (labels[0]?.startsWith('_')) {
    if (!isServiceLabel(labels[0]) || !isServiceLabel(labels[1] ?? '') || labels.length < 3) {
      fail('a full SRV name needs _service._proto.domain');
    }
    for (const label of labels.slice(2)) if (!isHostLabel(label)) fail(`"${label}" is not a valid DNS label`);
    return `${text}.`;
  }
  if (labels.length > 2) fail('too many labels for NAME.ENVIRONMENT');
  for (const label of labels) if (!isHostLabel(label)) fail(`"${label}" is not a valid DNS label`);
  const env = canonicalName(domain);
  if (env === '') fail('no --domain to resolve a short name in');
  const [name, otherEnv] = labels as [string, string | undefined];
  if (otherEnv === undefined) return `_${name}._tcp.${env}.`;
  const parent = env.includes('.') ? env.slice(env.indexOf('.') + 1) : '';
  if (parent === '') fail(`domain "${domain}" has no parent to find environment "${otherEnv}" in`);
  return `_${name}._tcp.${otherEnv}.${parent}.`;
}
