/**
 * The DNS servers' UDP socket keeps the queries that arrive while srvlink
 * cannot read them (here: stopped with SIGSTOP, as a stall, a long GC or
 * code still compiling after start would hold it): once it runs again it
 * answers every one. With the kernel's default receive buffer (~200 KB,
 * about 250 small queries) most of a burst of 2,000 was dropped.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseHostPort } from '../../src/core/host-port.js';
import { loadNativeAddon } from '../../src/core/native-addon.js';
import { dig } from '../helpers/dig.js';
import { rawQuery } from '../helpers/raw-dns.js';
import { spawnSrvlink } from '../helpers/srvlink-process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const BURST = 2000;
const hasFastPath = loadNativeAddon().addon?.udpOpen !== undefined;

describe('srvlink dns under a stall', () => {
  it.each(hasFastPath ? ['js', 'native'] : ['js'])('answers every query of a burst that came while it was stopped (%s path)', async (path) => {
    const file = join(tempDir(), 'records.yaml');
    writeFileSync(file, '/skydns/local/skydns/env1/_tcp/_web/w1: {host: 10.0.0.1, port: 80}\n');
    const srvlink = spawnSrvlink(['dns', '--listen', '127.0.0.1:0', '--zone', 'skydns.local', '--records', file, '--dns-fast-path', path]);
    const line = await srvlink.waitForLog((l) => l.msg === 'dns server listening');
    const server = parseHostPort(String(line.address), 'address');
    const name = '_web._tcp.env1.skydns.local';
    expect((await dig(server, name, 'SRV')).answer).toHaveLength(1);

    const client = createSocket({ type: 'udp4', recvBufferSize: 8 * 1024 * 1024 });
    onTestFinished(() => void client.close());
    client.bind(0, '127.0.0.1');
    await once(client, 'listening');
    const answered = new Set<number>();
    client.on('message', (reply: Buffer) => answered.add(reply.readUInt16BE(0)));

    const pid = srvlink.child.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      for (let id = 0; id < BURST; id++) {
        await new Promise<void>((resolve, reject) => client.send(rawQuery(id, { name, type: 'SRV' }), server.port, server.host, (err) => (err ? reject(err) : resolve())));
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Those not answered by then never will be: the count says how many were lost.
    await waitFor(() => answered.size === BURST, { timeout: 20_000, what: `${BURST} answers` }).catch(() => undefined);
    expect(answered.size).toBe(BURST);
    expect((await dig(server, name, 'SRV')).answer).toHaveLength(1);
  });
});
