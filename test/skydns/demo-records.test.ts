import { describe, expect, it } from 'vitest';
import { answerZoneQuery } from '../../src/skydns/answer-zone-query.js';
import { DEMO_RECORDS, demoRecords } from '../../src/skydns/demo-records.js';
import { MemoryZoneStore } from '../../src/skydns/memory-zone-store.js';
import { formatRecord } from './format-record.js';

function srv(records: Readonly<Record<string, unknown>>, name: string): string[] {
  const store = MemoryZoneStore.fromValues(records);
  expect(store.malformed).toBe(0);
  return answerZoneQuery({ name, type: 'SRV' }, { zone: 'skydns.local', store, now: 0 }).answers.map(formatRecord);
}

describe('demo records', () => {
  it('serve the demo service: 3:1 at priority 10, a fallback at 20', () => {
    expect(srv(demoRecords({ alpha: 1001, beta: 1002, gamma: 1003 }), '_demo._tcp.env1.skydns.local')).toEqual([
      '_demo._tcp.env1.skydns.local 300 SRV 10 75 1001 alpha._demo._tcp.env1.skydns.local',
      '_demo._tcp.env1.skydns.local 300 SRV 10 25 1002 beta._demo._tcp.env1.skydns.local',
      '_demo._tcp.env1.skydns.local 300 SRV 20 100 1003 gamma._demo._tcp.env1.skydns.local',
    ]);
  });

  it('serve the worked example', () => {
    expect(srv(DEMO_RECORDS, '_zookeeper._tcp.env1.skydns.local')).toEqual([
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 20 100 31003 zk3._zookeeper._tcp.env1.skydns.local',
    ]);
  });

  it('put every demo backend on 127.0.0.1', () => {
    const demo = Object.entries(DEMO_RECORDS).filter(([key]) => key.includes('/_demo/'));
    expect(demo.map(([, value]) => value.host)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1']);
  });
});
