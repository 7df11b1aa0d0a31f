import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { makeTestCerts } from '../helpers/tls-certs.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError, InvalidArgumentError } from '../../src/core/errors.js';
import { parseHealthCheck } from '../../src/registry/health-check.js';
import { startTcpBackend, unusedPort } from '../helpers/tcp-backends.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

describe('parseHealthCheck', () => {
  it.each([
    ['tcp://127.0.0.1:8080', 'tcp://127.0.0.1:8080'],
    ['TCP://db.internal:5432', 'tcp://db.internal:5432'],
    ['tcp://[::1]:8080', 'tcp://[::1]:8080'],
    ['http://127.0.0.1:8080/health', 'http://127.0.0.1:8080/health'],
    ['http://127.0.0.1/', 'http://127.0.0.1/'],
    ['http://127.0.0.1', 'http://127.0.0.1/'],
    ['http://[::1]:81/ready?full=1', 'http://[::1]:81/ready?full=1'],
    ['http://user:secret@127.0.0.1:8080/health', 'http://127.0.0.1:8080/health'],
    ['exec:pg_isready', 'exec:pg_isready'],
    ['zookeeper://127.0.0.1:2181', 'zookeeper://127.0.0.1:2181'],
    ['zookeeper://[::1]', 'zookeeper://[::1]:2181'],
    ['redis://127.0.0.1', 'redis://127.0.0.1:6379'],
    ['redis://127.0.0.1:7000?password-file=/run/secrets/r&user=app', 'redis://127.0.0.1:7000 (AUTH as app, password from /run/secrets/r)'],
    ['postgres://db.internal', 'postgres://db.internal:5432'],
    ['postgresql://127.0.0.1:6432/', 'postgres://127.0.0.1:6432'],
    ['https://127.0.0.1:8443/health', 'https://127.0.0.1:8443/health'],
    ['exec: mysqladmin -pSECRET ping', 'exec:mysqladmin …'],
  ])('%s → %s', (spec, description) => {
    const check = parseHealthCheck(spec);
    expect(check.description).toBe(description);
    expect(check.timeout).toBe(2000);
  });

  it('takes the timeout per check', () => {
    expect(parseHealthCheck('exec:true', { timeout: 250 }).timeout).toBe(250);
  });

  it.each([
    ['', 'invalid check "": no kind of check given; expected tcp://HOST:PORT, zookeeper://'],
    ['127.0.0.1:8080', 'invalid check "127.0.0.1:8080": unknown kind of check "127.0.0.1"'],
    ['udp://127.0.0.1:53', 'unknown kind of check "udp"'],
        ['tcp:127.0.0.1:80', 'missing "//" after "tcp:"'],
    ['tcp://127.0.0.1', 'missing port'],
    ['tcp://127.0.0.1:0', 'port 0 cannot be checked'],
    ['tcp://127.0.0.1:99999', 'expected a number 0-65535'],
    ['tcp://bad host:80', 'neither an IP address nor a host name'],
    ['http://', 'not a URL'],
    ['http://127.0.0.1:0/', 'port 0 cannot be checked'],
    ['http://127.0.0.1/#x', 'fragment'],
    ['exec:', 'missing command after "exec:"'],
    ['zookeeper://127.0.0.1:2181/x', 'unexpected path "/x"'],
    ['zookeeper://127.0.0.1:2181?mode=x', 'unexpected query key "mode"'],
    ['redis://:secret@127.0.0.1', 'a user or password in the URL would show'],
    ['redis://127.0.0.1?password=x', 'unknown query key "password", expected password-file or user'],
    ['redis://127.0.0.1?user=app', '"user" needs a "password-file"'],
    ['redis://127.0.0.1?password-file=', 'empty value for "password-file"'],
    ['postgres://127.0.0.1:0', 'port 0 cannot be checked'],
    ['exec:   ', 'missing command after "exec:"'],
  ])('%j → ConfigError %s', (spec, message) => {
    expect(() => parseHealthCheck(spec)).toThrow(ConfigError);
    expect(() => parseHealthCheck(spec)).toThrow(message);
  });

  it.each([
    ['zookeeper://127.0.0.1:2181', { send: 'srvr' }, 'invalid check send "srvr": only a tcp:// check sends'],
    ['exec:true', { expect: 'x' }, 'invalid check expect "x": only tcp:// (a regular expression) and http(s):// (statuses)'],
    ['http://127.0.0.1/', { send: 'GET' }, 'invalid check send "GET"'],
    ['http://127.0.0.1/', { expect: '2xx' }, 'is not a status or range'],
    ['http://127.0.0.1/', { expect: '399-200' }, 'is not a status or range'],
    ['tcp://127.0.0.1:80', { expect: '(' }, 'invalid check expect "(": not a regular expression'],
    ['tcp://127.0.0.1:80', { send: 'a\\q' }, 'unknown escape "\\q"'],
  ])('%s with %j → ConfigError %s', (spec, options, message) => {
    expect(() => parseHealthCheck(spec, options)).toThrow(ConfigError);
    expect(() => parseHealthCheck(spec, options)).toThrow(message);
  });

  it.each([0, -1, 1.5])('refuses timeout %d', (timeout) => {
    expect(() => parseHealthCheck('exec:true', { timeout })).toThrow(InvalidArgumentError);
  });

  it('names the setting it was given', () => {
    expect(() => parseHealthCheck('foo', { what: 'register.check' })).toThrow('invalid register.check "foo"');
  });
});

describe('tcp check', () => {
  it('passes while something accepts, fails when nothing listens', async () => {
    const backend = await startTcpBackend(() => undefined);
    const check = parseHealthCheck(`tcp://127.0.0.1:${backend.address.port}`);
    expect((await check.run()).ok).toBe(true);
    await backend.nextConnection();
    const refused = parseHealthCheck(`tcp://127.0.0.1:${await unusedPort()}`);
    expect((await refused.run()).ok).toBe(false);
  });

  it('sends --check-send (escapes resolved) and passes once the answer matches --check-expect', async () => {
    const seen: Buffer[] = [];
    const backend = await startTcpBackend((socket) => {
      socket.on('data', (chunk: Buffer) => {
        seen.push(chunk);
        // The answer in two pieces, the match across them.
        socket.write('+OK hel');
        setTimeout(() => socket.end('lo\r\n'), 20);
      });
    });
    const check = parseHealthCheck(`tcp://127.0.0.1:${backend.address.port}`, { send: 'PING\\r\\n\\x00', expect: '^\\+OK hello$' });
    expect(check.description).toBe(`tcp://127.0.0.1:${backend.address.port} (send 7 bytes, expect /^\\+OK hello$/m)`);
    expect(await check.run()).toEqual({ ok: true, reason: 'answer matched: "+OK hello"' });
    expect(Buffer.concat(seen)).toEqual(Buffer.from('PING\r\n\0'));
    const mismatch = parseHealthCheck(`tcp://127.0.0.1:${backend.address.port}`, { send: 'x', expect: '^NOPE' });
    expect(await mismatch.run()).toEqual({ ok: false, reason: 'answer did not match /^NOPE/m: "+OK hello"' });
  });

  it('fails on its timeout when the server accepts but never answers', async () => {
    const backend = await startTcpBackend(() => undefined);
    const check = parseHealthCheck(`tcp://127.0.0.1:${backend.address.port}`, { send: 'hi', expect: 'x', timeout: 200 });
    expect(await check.run()).toEqual({ ok: false, reason: 'timed out after 200 ms waiting for the answer' });
  });

  it('takes an answer that came in time when the process was too busy to read it before the timeout ran out', async () => {
    // The server answers at once, then keeps the event loop busy past the
    // check's timeout (a process descheduled on a loaded machine looks the
    // same): the expired timer and the answer are both waiting when the loop comes back.
    const backend = await startTcpBackend((socket) => {
      socket.once('data', () => {
        socket.write('+OK\r\n');
        setImmediate(() => {
          const until = performance.now() + 400;
          while (performance.now() < until);
        });
      });
    });
    const check = parseHealthCheck(`tcp://127.0.0.1:${backend.address.port}`, { send: 'PING\\r\\n', expect: '^\\+OK', timeout: 100 });
    expect(await check.run()).toEqual({ ok: true, reason: 'answer matched: "+OK"' });
  });

  it('fails at once when the signal is already aborted', async () => {
    const backend = await startTcpBackend(() => undefined);
    const check = parseHealthCheck(`tcp://127.0.0.1:${backend.address.port}`);
    expect((await check.run(AbortSignal.abort())).ok).toBe(false);
  });
});

interface HttpTarget {
  port: number;
  status: number;
  requests: IncomingMessage[];
}

async function startHttp(handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<HttpTarget> {
  const target: HttpTarget = { port: 0, status: 200, requests: [] };
  const server = createServer((req, res) => {
    target.requests.push(req);
    if (handler) return handler(req, res);
    res.writeHead(target.status, target.status >= 300 && target.status < 400 ? { location: '/elsewhere' } : {});
    res.end('body');
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  target.port = address.port;
  return target;
}

describe('http check', () => {
  it.each([
    [200, true],
    [204, true],
    [301, true],
    [302, true],
    [399, true],
    [400, false],
    [404, false],
    [500, false],
    [503, false],
  ])('status %i → %s', async (status, passes) => {
    const target = await startHttp();
    target.status = status;
    const check = parseHealthCheck(`http://127.0.0.1:${target.port}/health?deep=1`);
    expect((await check.run()).ok).toBe(passes);
    expect(target.requests).toHaveLength(1);
    expect(target.requests[0]?.url).toBe('/health?deep=1');
    expect(target.requests[0]?.method).toBe('GET');
  });

  it.each([
    ['200', 200, true],
    ['200', 204, false],
    ['200-299', 302, false],
    ['200,204,300-399', 204, true],
    ['500-503', 503, true],
  ])('--check-expect %s, status %i → %s', async (expectStatus, status, passes) => {
    const target = await startHttp();
    target.status = status;
    const result = await parseHealthCheck(`http://127.0.0.1:${target.port}/`, { expect: expectStatus }).run();
    expect(result.ok).toBe(passes);
    expect(result.reason).toBe(passes ? `status ${status}` : `status ${status}, expected ${expectStatus}`);
  });

  it('https: checks a server with a certificate for another name (not verified)', async () => {
    const certs = await makeTestCerts(tempDir());
    const server = createHttpsServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (req, res) => {
      res.writeHead(req.url === '/ok' ? 204 : 503);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void server.close());
    const port = (server.address() as { port: number }).port;
    expect(await parseHealthCheck(`https://localhost:${port}/ok`).run()).toEqual({ ok: true, reason: 'status 204' });
    expect(await parseHealthCheck(`https://127.0.0.1:${port}/down`).run()).toEqual({ ok: false, reason: 'status 503, expected 200-399' });
  });

  it('sends the user and password of the URL as Basic auth', async () => {
    const target = await startHttp();
    expect((await parseHealthCheck(`http://alice:s%40cret@127.0.0.1:${target.port}/`).run()).ok).toBe(true);
    expect(target.requests[0]?.headers.authorization).toBe(`Basic ${Buffer.from('alice:s@cret').toString('base64')}`);
  });

  it('fails when nothing listens', async () => {
    expect((await parseHealthCheck(`http://127.0.0.1:${await unusedPort()}/`).run()).ok).toBe(false);
  });

  it('fails after its timeout when the server never answers', async () => {
    const target = await startHttp(() => undefined);
    const check = parseHealthCheck(`http://127.0.0.1:${target.port}/`, { timeout: 200 });
    const started = performance.now();
    expect((await check.run()).ok).toBe(false);
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(150);
    expect(took).toBeLessThan(5000);
  });

  it('fails when the signal aborts', async () => {
    const target = await startHttp(() => undefined);
    const check = parseHealthCheck(`http://127.0.0.1:${target.port}/`, { timeout: 60_000 });
    const controller = new AbortController();
    const result = check.run(controller.signal);
    await waitFor(() => target.requests.length === 1, { what: 'the request to arrive' });
    controller.abort();
    expect((await result).ok).toBe(false);
  });
});

describe('exec check', () => {
  it.each([
    ['exit 0', true],
    ['true', true],
    ['exit 3', false],
    ['false', false],
    ['test "$((1 + 1))" = 2', true],
    ['/nonexistent/program', false],
  ])('%s → %s', async (command, passes) => {
    expect((await parseHealthCheck(`exec:${command}`).run()).ok).toBe(passes);
  });

  it('kills the whole process group after its timeout', async () => {
    const dir = tempDir();
    const pidFile = join(dir, 'pid');
    // The shell starts a grandchild and waits for it: killing the shell alone would leave `sleep` behind.
    const check = parseHealthCheck(`exec:sleep 30 & echo $! > ${pidFile}; wait`, { timeout: 300 });
    const started = performance.now();
    expect((await check.run()).ok).toBe(false);
    expect(performance.now() - started).toBeLessThan(5000);
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', { what: 'the pid file' });
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    await waitFor(() => !alive(pid), { what: `sleep (pid ${pid}) to be killed` });
  });
});

/** Whether `pid` still runs: a zombie (killed, not reaped yet by whoever inherited it) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
