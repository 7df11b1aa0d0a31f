import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Programs the image test runs inside the container: a shell, a legacy client's tools, the cluster DNS and a backend. */
const PROGRAMS = ['sh', 'bash', 'sleep', 'cat', 'head', 'getent', 'dnsmasq', 'socat'];

function which(name: string): string {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) if (existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`cannot build the test base image: "${name}" is not installed (make system-deps installs it)`);
}

/**
 * A base image made here, with no registry: FROM scratch plus this machine's
 * own programs and the libraries they link (ldd), imported with `podman
 * import`. It has glibc and libstdc++, as most images do, but no Node:
 * srvlink must bring its own. Tagged by
 * the content's hash, so it is built once and reused (the tree is cached in
 * .cache/images/, which git ignores).
 */
export function testBaseImage(podman: (args: string[]) => string): string {
  const files = new Set<string>();
  // What the artifact links besides glibc (libstdc++, libgcc_s), as most images have; not node itself.
  for (const match of execFileSync('ldd', [process.execPath], { encoding: 'utf8' }).matchAll(/(\/\S+) \(0x/g)) files.add(match[1] as string);
  for (const program of PROGRAMS) {
    const path = which(program);
    files.add(path);
    for (const match of execFileSync('ldd', [path], { encoding: 'utf8' }).matchAll(/(\/\S+) \(0x/g)) files.add(match[1] as string);
  }
  const etc: Record<string, string> = {
    'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    'etc/group': 'root:x:0:\nnogroup:x:65534:\n',
    'etc/nsswitch.conf': 'hosts: files dns\n',
    'etc/hosts': '127.0.0.1 localhost\n',
    'etc/resolv.conf': '',
  };
  const hash = createHash('sha256');
  for (const file of [...files].sort()) hash.update(`${file}\0`).update(readFileSync(file));
  for (const [name, text] of Object.entries(etc)) hash.update(`${name}\0${text}`);
  const tag = `localhost/srvlink-test-base:${hash.digest('hex').slice(0, 16)}`;
  if (podmanHas(podman, tag)) return tag;

  const tree = join(ROOT, '.cache/images/test-base');
  rmSync(tree, { recursive: true, force: true });
  for (const file of files) {
    // Under the directory's real path (/lib → /usr/lib here), by the name programs ask for.
    const target = join(tree, realpathSync(dirname(file)), basename(file));
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(realpathSync(file), target);
    execFileSync('chmod', ['--reference', realpathSync(file), target]);
  }
  for (const [name, text] of Object.entries(etc)) {
    mkdirSync(dirname(join(tree, name)), { recursive: true });
    writeFileSync(join(tree, name), text);
  }
  mkdirSync(join(tree, 'tmp'), { recursive: true, mode: 0o1777 });
  // The usual merged-/usr links, so /bin/sh and /usr/bin/sh are one.
  for (const dir of ['bin', 'sbin', 'lib', 'lib64']) {
    mkdirSync(join(tree, 'usr', dir), { recursive: true });
    if (!existsSync(join(tree, dir))) execFileSync('ln', ['-s', `usr/${dir}`, join(tree, dir)]);
  }
  const tarball = join(ROOT, '.cache/images/test-base.tar');
  execFileSync('tar', ['-C', tree, '-cf', tarball, '.']);
  podman(['import', tarball, tag]);
  return tag;
}

function podmanHas(podman: (args: string[]) => string, image: string): boolean {
  try {
    podman(['image', 'exists', image]);
    return true;
  } catch {
    return false;
  }
}
