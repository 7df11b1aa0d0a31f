/**
 * `make bench`: what one scrape of the admin endpoint costs with 100
 * mappings of 10 backends each (1,000 backends, ~10,000 series): real
 * forwarders on loopback, static sets, the composition root's adapters,
 * the HTTP endpoint. "render" is the snapshot and the text alone;
 * "GET /metrics" adds HTTP on loopback; "GET /status" is the JSON page
 * `srvlink status` reads.
 */
import { afterAll, beforeAll, bench, describe } from 'vitest';
import { AdminMetrics } from '../../src/admin/admin-metrics.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import type { AdminSource } from '../../src/admin/admin-source.js';
import { mappingSnapshot, type MappingParts } from '../../src/cli/admin-runtime.js';
import { formatHostPort } from '../../src/core/host-port.js';
import { StaticBackendSource } from '../../src/discovery/static-backend-source.js';
import { Forwarder } from '../../src/proxy/forwarder.js';

const MAPPINGS = 100;
const BACKENDS = 10;
const parts: MappingParts[] = [];
const metrics = new AdminMetrics();
const source: AdminSource = {
  snapshot: async () => ({
    command: 'run',
    pid: process.pid,
    uptime: process.uptime(),
    mappings: await Promise.all(parts.map((p) => mappingSnapshot(p))),
    dnsListeners: [],
    registrations: [],
  }),
};
const server = new AdminServer({ listen: { host: '127.0.0.1', port: 0 }, source, metrics });
let base = '';

beforeAll(async () => {
  for (let m = 0; m < MAPPINGS; m++) {
    const srvName = `_svc${m}._tcp.env1.skydns.local.`;
    const backendSource = new StaticBackendSource({
      name: srvName,
      backends: Array.from({ length: BACKENDS }, (_, b) => ({ host: `10.${m >> 8}.${m & 255}.${b + 1}`, port: 31000 + b, priority: b < 5 ? 10 : 20 })),
    });
    const forwarder = new Forwarder({ name: srvName, listen: { host: '127.0.0.1', port: 0 }, source: backendSource });
    await forwarder.start();
    await backendSource.start();
    parts.push({ listen: { host: '127.0.0.1', port: 0 }, service: `svc${m}`, srvName, discovery: 'static', forwarder, source: backendSource });
    metrics.observeDial(srvName, 0.4);
  }
  await server.start();
  base = `http://${formatHostPort(server.address())}`;
  const page = await (await fetch(`${base}/metrics`)).text();
  const series = page.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
  process.stderr.write(`admin scrape bench: ${MAPPINGS} mappings, ${MAPPINGS * BACKENDS} backends, ${series} series, ${Math.round(page.length / 1024)} KiB per scrape\n`);
});

afterAll(async () => {
  await server.close();
  await Promise.all(parts.map((p) => p.forwarder.close()));
});

describe(`one scrape, ${MAPPINGS} mappings × ${BACKENDS} backends`, () => {
  bench('render (snapshot + text format)', async () => {
    await metrics.render(source);
  });
  bench('GET /metrics over loopback HTTP', async () => {
    await (await fetch(`${base}/metrics`)).text();
  });
  bench('GET /status (JSON)', async () => {
    await (await fetch(`${base}/status`)).text();
  });
});
