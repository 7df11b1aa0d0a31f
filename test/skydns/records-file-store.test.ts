import { once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/logger.js';
import { answerZoneQuery } from '../../src/skydns/answer-zone-query.js';
import { RecordsFileStore, type RecordsFileReload } from '../../src/skydns/records-file-store.js';
import type { ZoneStore } from '../../src/skydns/zone-store.js';
import { formatRecord } from './format-record.js';

const ZK = '/skydns/local/skydns/env1/_tcp/_zookeeper';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'srvlink-records-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function track(store: RecordsFileStore): RecordsFileStore {
  cleanups.push(() => store.close());
  return store;
}

/** Replace the file the way editors and ConfigMaps do: write aside, rename over. */
async function replaceFile(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

function srv(store: ZoneStore): string[] {
  const answer = answerZoneQuery({ name: '_zookeeper._tcp.env1.skydns.local', type: 'SRV' }, { zone: 'skydns.local', store, now: 0 });
  return answer.answers.map(formatRecord);
}

const ZK1 = '_zookeeper._tcp.env1.skydns.local 300 SRV 10 100 31001 zk1._zookeeper._tcp.env1.skydns.local';

describe('RecordsFileStore', () => {
  it('serves a YAML file of objects and JSON strings, skipping and counting bad values', async () => {
    const dir = await tempDir();
    const path = join(dir, 'records.yaml');
    await writeFile(
      path,
      [
        `${ZK}/zk1: {host: 10.0.0.11, port: 31001}`,
        `${ZK}/zk2: '{"host":"10.0.0.12","port":31002,"weight":50}'`,
        `${ZK}/zk3: {host: 10.0.0.13, port: "31003"}`,
        `${ZK}/zk4: [1, 2]`,
        '',
      ].join('\n'),
    );
    const lines: string[] = [];
    const store = track(new RecordsFileStore(path, { logger: createLogger({ write: (line) => lines.push(line) }) }));
    await store.start();
    expect(store.malformed).toBe(2);
    expect(store.size).toBe(2);
    expect(srv(store)).toEqual([
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 66 31001 zk1._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 33 31002 zk2._zookeeper._tcp.env1.skydns.local',
    ]);
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged.filter((line) => line.msg === 'skipping malformed skydns record').map((line) => line.key)).toEqual([`${ZK}/zk3`, `${ZK}/zk4`]);
    expect(logged.at(-1)).toMatchObject({ msg: 'records file loaded', file: path, records: 2, malformed: 2 });
  });

  it('serves a JSON file', async () => {
    const path = join(await tempDir(), 'records.json');
    await writeFile(path, JSON.stringify({ [`${ZK}/zk1`]: { host: '10.0.0.11', port: 31001 } }));
    const store = track(new RecordsFileStore(path));
    await store.start();
    expect(srv(store)).toEqual([ZK1]);
  });

  it('re-reads the file when it is replaced', async () => {
    const path = join(await tempDir(), 'records.yaml');
    await writeFile(path, `${ZK}/zk1: {host: 10.0.0.11, port: 31001}\n`);
    const store = track(new RecordsFileStore(path, { debounceMs: 10 }));
    await store.start();
    expect(srv(store)).toEqual([ZK1]);

    const reloaded = once(store, 'reload') as Promise<[RecordsFileReload]>;
    await replaceFile(path, `${ZK}/zk1: {host: 10.0.0.11, port: 31001}\n${ZK}/zk9: {host: 10.0.0.19, port: 31009, priority: 5}\n`);
    expect(await reloaded).toEqual([{ records: 2, malformed: 0 }]);
    expect(srv(store)).toEqual([
      '_zookeeper._tcp.env1.skydns.local 300 SRV 10 100 31001 zk1._zookeeper._tcp.env1.skydns.local',
      '_zookeeper._tcp.env1.skydns.local 300 SRV 5 100 31009 zk9._zookeeper._tcp.env1.skydns.local',
    ]);
  });

  it('re-reads the file when it is rewritten in place', async () => {
    const path = join(await tempDir(), 'records.yaml');
    await writeFile(path, `${ZK}/zk1: {host: 10.0.0.11, port: 31001}\n`);
    const store = track(new RecordsFileStore(path, { debounceMs: 10 }));
    await store.start();

    const reloaded = once(store, 'reload');
    await writeFile(path, `${ZK}/zk1: {host: 10.0.0.11, port: 31111}\n`);
    await reloaded;
    expect(srv(store)).toEqual(['_zookeeper._tcp.env1.skydns.local 300 SRV 10 100 31111 zk1._zookeeper._tcp.env1.skydns.local']);
  });

  it.each([
    ['broken YAML', `${ZK}/zk1: {host: [\n`, 'cannot parse records file'],
    ['a list', '- a\n- b\n', 'expected a mapping of etcd key to record, got a list'],
    ['an empty file', '', 'expected a mapping of etcd key to record, got an empty document'],
  ])('keeps the previous contents when the file is rewritten as %s', async (_what, text, problem) => {
    const path = join(await tempDir(), 'records.yaml');
    await writeFile(path, `${ZK}/zk1: {host: 10.0.0.11, port: 31001}\n`);
    const store = track(new RecordsFileStore(path, { debounceMs: 10 }));
    await store.start();

    const failed = once(store, 'reload-error') as Promise<[Error]>;
    await replaceFile(path, text);
    const [err] = await failed;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain(path);
    expect(err.message).toContain(problem);
    expect(srv(store)).toEqual([ZK1]);

    // And it recovers when the file is fixed.
    const reloaded = once(store, 'reload');
    await replaceFile(path, `${ZK}/zk2: {host: 10.0.0.12, port: 31002}\n`);
    await reloaded;
    expect(srv(store)).toEqual(['_zookeeper._tcp.env1.skydns.local 300 SRV 10 100 31002 zk2._zookeeper._tcp.env1.skydns.local']);
  });

  it('keeps the previous contents when the file is deleted', async () => {
    const path = join(await tempDir(), 'records.yaml');
    await writeFile(path, `${ZK}/zk1: {host: 10.0.0.11, port: 31001}\n`);
    const store = track(new RecordsFileStore(path, { debounceMs: 10 }));
    await store.start();
    const failed = once(store, 'reload-error') as Promise<[Error]>;
    await rm(path);
    const [err] = await failed;
    expect(err.message).toContain(`cannot read records file "${path}"`);
    expect(srv(store)).toEqual([ZK1]);
  });

  it.each([
    ['is missing', null, 'cannot read records file'],
    ['is not YAML', '{a: [', 'cannot parse records file'],
    ['is a list', '- 1\n', 'expected a mapping of etcd key to record, got a list'],
    ['is a scalar', '42\n', 'expected a mapping of etcd key to record, got 42'],
    ['has a duplicate key', 'a: {host: h}\na: {host: h}\n', 'cannot parse records file'],
  ])('fails to start with a ConfigError naming the file when it %s', async (_what, text, problem) => {
    const path = join(await tempDir(), 'records.yaml');
    if (text !== null) await writeFile(path, text);
    const store = track(new RecordsFileStore(path));
    const started = store.start();
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toThrow(`"${path}"`);
    await expect(started).rejects.toThrow(problem);
  });

  it('fails to start when the directory does not exist', async () => {
    const path = join(await tempDir(), 'missing', 'records.yaml');
    const store = track(new RecordsFileStore(path));
    await expect(store.start()).rejects.toThrow(`cannot watch records file "${path}"`);
  });

  it('closes twice, and stops re-reading once closed', async () => {
    const path = join(await tempDir(), 'records.yaml');
    await writeFile(path, `${ZK}/zk1: {host: 10.0.0.11, port: 31001}\n`);
    const store = new RecordsFileStore(path, { debounceMs: 10 });
    await store.start();
    await store.close();
    await store.close();
    store.on('reload', () => expect.unreachable('reloaded after close'));
    await replaceFile(path, `${ZK}/zk2: {host: 10.0.0.12, port: 31002}\n`);
    expect(srv(store)).toEqual([ZK1]);
  });
});
