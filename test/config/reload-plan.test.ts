import { describe, expect, it } from 'vitest';
import type { LayeredValue } from '../../src/config/config-file.js';
import { flagName } from '../../src/config/option-source.js';
import { planReload } from '../../src/config/reload-plan.js';
import { parseRunConfig, type RunConfig, type RunSetting } from '../../src/config/run-config.js';

function config(settings: Partial<Record<RunSetting, unknown>>): RunConfig {
  const layered: Partial<Record<RunSetting, LayeredValue>> = Object.fromEntries(
    Object.entries({ domain: 'env1.skydns.local', clusterDns: ['127.0.0.1:5353'], ...settings }).map(([key, value]) => [
      key,
      { value, source: { flag: `--${flagName(key)}`, from: 'config' as const, file: 'f.yaml' } },
    ]),
  );
  return parseRunConfig(layered);
}

describe('planReload', () => {
  it('keeps mappings with the same address and service, adds and removes the rest', () => {
    const before = config({ map: ['127.0.0.1:2181=zookeeper', '127.0.0.1:5432=postgres', '127.0.0.1:0=redis'] });
    const after = config({ map: ['127.0.0.1:2181=zookeeper', '127.0.0.1:5432=postgres.env2', '127.0.0.1:0=redis', { listen: '127.0.0.1:6000', service: 'kafka', aliases: ['k'] }] });
    const plan = planReload(before, after);
    expect(plan.kept.map((k) => k.after.service)).toEqual(['zookeeper', 'redis']);
    expect(plan.removed.map((m) => m.service)).toEqual(['postgres']);
    expect(plan.added.map((m) => m.service)).toEqual(['postgres.env2', 'kafka']);
    expect(plan).toMatchObject({ forwarderSettings: false, discovery: false, resolvers: false, restartNeeded: [] });
  });

  it.each([
    [{ connectTimeout: '5s' }, { forwarderSettings: true, discovery: false, resolvers: false }],
    [{ maxConns: '10' }, { forwarderSettings: true }],
    [{ dialDeadline: '9s' }, { forwarderSettings: true, discovery: false, resolvers: false }],
    [{ ttlMax: '10s' }, { discovery: true, resolvers: false }],
    [{ clusterDns: ['127.0.0.1:5454'] }, { discovery: true, resolvers: true }],
    [{ upstream: ['127.0.0.1:5454'] }, { discovery: false, resolvers: true }],
    [{ discovery: 'static', backend: ['zookeeper=127.0.0.1:1'] }, { discovery: true }],
  ])('notices %j', (change, expected) => {
    const base = { map: ['127.0.0.1:2181=zookeeper'] };
    expect(planReload(config(base), config({ ...base, ...change }))).toMatchObject({ ...expected, restartNeeded: [] });
  });

  it('names what needs a restart', () => {
    const base = { map: ['127.0.0.1:2181=zookeeper'] };
    const plan = planReload(
      config(base),
      config({ ...base, dnsListen: '127.0.0.1:5300', allowFrom: ['10.0.0.0/8'], dnsCacheSize: '5', clusterDomain: 'other.local', discovery: 'etcd', reloadSignal: 'USR1' }),
    );
    expect(plan.restartNeeded).toEqual(['dns-listen', 'cluster-domain', 'allow-from', 'dns-cache-size', 'reload-signal', 'discovery']);
    expect(plan.discovery).toBe(false);
    expect(planReload(config({ ...base, writeResolvConf: true }), config({ ...base, writeResolvConf: true, domain: 'env2.skydns.local' })).restartNeeded).toEqual(['domain']);
  });
});
