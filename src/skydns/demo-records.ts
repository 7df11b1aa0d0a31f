/** A record as a records file or etcd would hold it (before `parseSkydnsRecord`). */
export interface DemoRecordValue {
  readonly host: string;
  readonly port: number;
  readonly priority?: number;
  readonly weight?: number;
}

/** Ports of the three demo backends, which the demo script starts on 127.0.0.1. */
export interface DemoPorts {
  alpha: number;
  beta: number;
  gamma: number;
}

const DEMO_SERVICE = '/skydns/local/skydns/env1/_tcp/_demo';
const ZOOKEEPER_SERVICE = '/skydns/local/skydns/env1/_tcp/_zookeeper';

/**
 * The records `srvlink dns` serves without `--records`, with the demo
 * backends on `ports`:
 *
 * - `_demo._tcp.env1.skydns.local`: `alpha` and `beta` at priority 10 sharing
 *   3:1 (weights 75 and 25), `gamma` at priority 20 as the fallback, all on 127.0.0.1;
 * - `_zookeeper._tcp.env1.skydns.local`: the worked example of the design
 *   (zk1..zk3 on 10.0.0.11-13, answering `SRV 10 66 31001`, `10 33 31002`, `20 100 31003`).
 */
export function demoRecords(ports: DemoPorts): Readonly<Record<string, DemoRecordValue>> {
  return Object.freeze({
    [`${DEMO_SERVICE}/alpha`]: { host: '127.0.0.1', port: ports.alpha, priority: 10, weight: 75 },
    [`${DEMO_SERVICE}/beta`]: { host: '127.0.0.1', port: ports.beta, priority: 10, weight: 25 },
    [`${DEMO_SERVICE}/gamma`]: { host: '127.0.0.1', port: ports.gamma, priority: 20 },
    [`${ZOOKEEPER_SERVICE}/zk1`]: { host: '10.0.0.11', port: 31001 },
    [`${ZOOKEEPER_SERVICE}/zk2`]: { host: '10.0.0.12', port: 31002, weight: 50 },
    [`${ZOOKEEPER_SERVICE}/zk3`]: { host: '10.0.0.13', port: 31003, priority: 20 },
  });
}

/** `demoRecords` with the default demo ports 18081-18083. */
export const DEMO_RECORDS: Readonly<Record<string, DemoRecordValue>> = demoRecords({ alpha: 18081, beta: 18082, gamma: 18083 });
