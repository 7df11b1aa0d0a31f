/**
 * A real container (docs/architecture.md §4.8): the images of images/ built
 * with podman from the very artifact the tests run, then the base image run
 * with a legacy client inside against a backend found by SRV. No registry:
 * the base is made here (./test-rootfs.ts). Runs where podman works (root,
 * runc); otherwise the test is skipped and its title says why.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';
import { ensureArtifact } from '../supervisor/artifact.js';
import { testBaseImage } from './test-rootfs.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// podman 4.3 here works with runc and explicit limits only (crun fails on this host's cgroups).
const RUN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];

function podman(args: string[], timeout = 120_000): string {
  return execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout, maxBuffer: 16 * 1024 * 1024 });
}

/** Why podman cannot run containers here, or undefined when it can. */
function podmanUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `podman containers need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return `the image test runs podman as root, this is uid ${process.getuid?.()}`;
  try {
    podman(['--version'], 10_000);
  } catch {
    return 'podman is not installed (make system-deps installs it)';
  }
  try {
    podman(['info', '--format', '{{.Host.OCIRuntime.Name}}'], 30_000);
  } catch (err) {
    return `podman does not work here: ${(err as { stderr?: string }).stderr?.trim().split('\n')[0] ?? String(err)}`;
  }
  return undefined;
}

const UNAVAILABLE = podmanUnavailable();
if (UNAVAILABLE !== undefined) process.stderr.write(`image test skipped: ${UNAVAILABLE}\n`);

/** The run the issue's example describes: a legacy app that only knows zk-legacy:2181 and localhost:2181. */
const CONFIG = `# srvlink.yaml of the image test: the cluster DNS is a dnsmasq inside the container
domain: env1.skydns.local
cluster-dns: ["127.0.0.1:5353"]
map:
  - {listen: "127.0.0.1:2181", service: zookeeper, aliases: [zk-legacy]}
write-resolv-conf: true
dns-timeout: 1s
`;

// Inside the container, as the app (CMD): start the "cluster" (dnsmasq with
// the SRV record, a backend on a port only SRV tells), then be the legacy
// client: the name it always used through glibc's resolver (now the stub),
// and localhost:2181. It retries while srvlink's first SRV lookup, made
// before dnsmasq was up, is retried.
const APP = `
dnsmasq --no-resolv --no-hosts --user=root --listen-address=127.0.0.1 --bind-interfaces --port=5353 \\
  --srv-host=_zookeeper._tcp.env1.skydns.local,zk1.env1.skydns.local,31001,10,10 \\
  --host-record=zk1.env1.skydns.local,127.0.0.1 --pid-file=/tmp/dnsmasq.pid || exit 90
socat TCP-LISTEN:31001,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo zk-backend' &
for ((i = 0; i < 100; i++)); do
  reply=$( (exec 3<>/dev/tcp/zk-legacy/2181 && head -1 <&3) 2>/dev/null )
  [ "$reply" = zk-backend ] && break
  sleep 0.1
done
echo "alias: $(getent hosts zk-legacy)"
echo "zk-legacy:2181 says: $reply"
echo "localhost:2181 says: $( (exec 3<>/dev/tcp/localhost/2181 && head -1 <&3) 2>&1)"
echo "pid of srvlink: $(cat /proc/1/comm)"
[ "$reply" = zk-backend ] && exit 0 || exit 1
`;

describe.skipIf(UNAVAILABLE !== undefined)(`the images of images/ in podman${UNAVAILABLE ? ` (skipped: ${UNAVAILABLE})` : ''}`, () => {
  const tag = `pid${process.pid}`;
  const images = { srvlink: `localhost/srvlink:${tag}`, base: `localhost/srvlink-base:${tag}`, sidecar: `localhost/srvlink-sidecar:${tag}` };

  beforeAll(() => {
    ensureArtifact();
    const base = testBaseImage((args) => podman(args));
    podman(['build', '--quiet', '-t', images.srvlink, '-f', join(ROOT, 'images/srvlink/Containerfile'), join(ROOT, 'dist/artifact')], 300_000);
    podman(['build', '--quiet', '-t', images.base, '--build-arg', `SRVLINK_IMAGE=${images.srvlink}`, '--build-arg', `BASE=${base}`, join(ROOT, 'images/base')], 300_000);
    podman(['build', '--quiet', '-t', images.sidecar, '--build-arg', `SRVLINK_IMAGE=${images.srvlink}`, join(ROOT, 'images/sidecar')], 300_000);
  }, 600_000);

  // This run's images go at the end; the base image (tagged by its content) and the build cache stay.
  afterAll(() => podmanQuiet(['rmi', '-f', ...Object.values(images)]));

  it('runs an app under srvlink as PID 1: a legacy client reaches a backend found by SRV through the stub', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'srvlink.yaml'), CONFIG);
    const name = `srvlink-image-test-${process.pid}`;
    onTestFinished(() => void podmanQuiet(['rm', '-f', '-t', '0', name]));
    let output: string;
    try {
      output = podman(['run', '--rm', '--name', name, ...RUN_FLAGS, '--network', 'none', '-v', `${join(dir, 'srvlink.yaml')}:/etc/srvlink.yaml:ro`, images.base, 'bash', '-c', APP]);
    } catch (err) {
      const e = err as { status?: number; stdout?: string; stderr?: string };
      throw new Error(`the base image's app failed (exit ${e.status}):\n${e.stdout}\n${e.stderr}`);
    }
    expect(output).toMatch(/^alias: 127\.0\.0\.1\s+zk-legacy/m);
    expect(output).toContain('zk-legacy:2181 says: zk-backend');
    expect(output).toContain('localhost:2181 says: zk-backend');
    // The image's ENTRYPOINT made the artifact PID 1.
    expect(output).toContain('pid of srvlink: srvlink');
  });

  it('exits with the status of the app in the base image', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'srvlink.yaml'), 'domain: env1.skydns.local\ndiscovery: static\nmap: ["2181=zookeeper"]\nbackend: ["zookeeper=127.0.0.1:31001"]\n');
    let status = 0;
    try {
      podman(['run', '--rm', ...RUN_FLAGS, '--network', 'none', '-v', `${join(dir, 'srvlink.yaml')}:/etc/srvlink.yaml:ro`, images.base, 'sh', '-c', 'exit 7']);
    } catch (err) {
      status = (err as { status?: number }).status ?? -1;
    }
    expect(status).toBe(7);
  });

  it('runs the FROM scratch sidecar image: the artifact needs nothing from the image', () => {
    const version = podman(['run', '--rm', ...RUN_FLAGS, '--network', 'none', '--entrypoint', '/srvlink/srvlink', images.sidecar, '--version']);
    expect(version.trim()).toBe('0.1.0');
  });
});

function podmanQuiet(args: string[]): void {
  try {
    podman(args, 60_000);
  } catch {
    // already gone
  }
}

