import { describe, expect, it } from 'vitest';
import { parseHealthCheck, type CheckResult } from '../../src/registry/health-check.js';
import { startPostgres } from '../helpers/postgres-server.js';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { onTestFinished } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';
import { makeTestCerts } from '../helpers/tls-certs.js';
import { waitFor } from '../helpers/wait-for.js';

const TIMEOUT = 800;

async function timed(spec: string): Promise<CheckResult & { ms: number }> {
  const started = performance.now();
  const result = await parseHealthCheck(spec, { timeout: TIMEOUT }).run();
  return { ...result, ms: performance.now() - started };
}

/** What PostgreSQL logs when a client goes wrong at the start of a connection. */
const ALARMING = /incomplete startup packet|could not accept SSL connection|unsupported frontend protocol|invalid length of startup packet|FATAL|ERROR|WARNING/;

describe('postgres:// check against PostgreSQL (Debian)', () => {
  it(
    'passes with TLS off and on, logging nothing; fails frozen, stopped, and against a server that is not PostgreSQL',
    async () => {
      const certs = await makeTestCerts(tempDir());
      const [plain, tls] = await Promise.all([startPostgres(), startPostgres({ tls: { cert: certs.serverCert, key: certs.serverKey } })]);
      // Not PostgreSQL: an HTTP server answers the 8 bytes with "HTTP/1.1 400 Bad Request".
      const http = createServer((_req, res) => res.end());
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
      onTestFinished(() => void http.close());
      const httpPort = (http.address() as { port: number }).port;

      const plainUrl = `postgres://127.0.0.1:${plain.port}`;
      for (let i = 0; i < 3; i++) expect(await timed(plainUrl)).toMatchObject({ ok: true, reason: 'answered the SSLRequest (TLS off)' });
      for (let i = 0; i < 3; i++) expect(await timed(`postgresql://127.0.0.1:${tls.port}`)).toMatchObject({ ok: true, reason: 'answered the SSLRequest (TLS on)' });

      expect(await timed(`postgres://127.0.0.1:${httpPort}`)).toMatchObject({ ok: false, reason: 'unexpected answer to an SSLRequest: "HTTP/1.1 400 Bad Request"' });

      // The postmaster frozen: connections queue in the kernel, nobody answers.
      await plain.kill('SIGSTOP');
      const frozen = await timed(plainUrl);
      expect(frozen).toMatchObject({ ok: false, reason: `timed out after ${TIMEOUT} ms waiting for the answer` });
      expect(frozen.ms).toBeLessThan(TIMEOUT + 3000);
      await plain.kill('SIGCONT');
      await waitFor(async () => (await timed(plainUrl)).ok, { what: 'the thawed server to pass again', interval: 100 });

      // Give the backends a moment to log whatever they would about our closes: poll one more check through.
      await timed(`postgres://127.0.0.1:${tls.port}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(plain.log().split('\n').filter((line) => ALARMING.test(line))).toEqual([]);
      expect(tls.log().split('\n').filter((line) => ALARMING.test(line))).toEqual([]);

      // ...whereas closing right after 'S' is what makes PostgreSQL complain: the check above avoids it.
      const raw = connect({ host: '127.0.0.1', port: tls.port });
      raw.on('error', () => undefined);
      raw.on('connect', () => raw.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
      raw.once('data', () => raw.destroy());
      await waitFor(() => tls.log().includes('could not accept SSL connection'), { what: 'the log line a careless close causes' });

      await plain.kill('SIGKILL');
      const stopped = await timed(plainUrl);
      expect(stopped).toMatchObject({ ok: false, reason: expect.stringContaining('ECONNREFUSED') });
    },
    60_000,
  );
});
