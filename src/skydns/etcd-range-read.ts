import type { IKeyValue, Namespace } from 'etcd3';

/** What a paged read needs of an etcd client. */
export type RangeReadClient = Pick<Namespace, 'getAll'>;

/** One consistent read of a prefix. */
export interface RangeRead {
  /** The revision every page was read at. */
  revision: number;
  kvs: IKeyValue[];
  /** Keys whose value alone is larger than a client message may be: read without their value. */
  oversized: Buffer[];
}

/** Keys per page: a few MiB of typical SkyDNS values, far under a gRPC message. */
const PAGE_KEYS = 1000;

/**
 * Read every key under `prefix` in pages, all at the revision of the first
 * (one consistent snapshot, as one range read would be). A single response
 * is bounded by the gRPC client's receive limit (4 MiB by default): a few
 * values of a megabyte would make one read of the whole prefix fail, and
 * with it every load and resync of the zone. A page that comes back too
 * large is asked again in smaller pages; a key too large on its own is
 * listed in `oversized` (its key read without the value) and passed over.
 */
export async function readRange(client: RangeReadClient, prefix: string, callOptions: () => { deadline: number }): Promise<RangeRead> {
  const end = prefixEnd(Buffer.from(prefix));
  let start: Buffer = Buffer.from(prefix);
  let revision: string | undefined;
  let limit = PAGE_KEYS;
  const kvs: IKeyValue[] = [];
  const oversized: Buffer[] = [];
  const page = (size: number): ReturnType<Namespace['getAll']> => {
    const builder = client.getAll().inRange({ start, end }).limit(size).options(callOptions());
    return revision === undefined ? builder : builder.revision(revision);
  };
  for (;;) {
    let response;
    try {
      response = await page(limit).exec();
    } catch (err) {
      if (!tooLarge(err)) throw err;
      if (limit > 1) {
        limit = Math.max(1, Math.floor(limit / 8));
        continue;
      }
      // One value is over the limit by itself: note its key, go on after it.
      const [key] = await page(1).keyBuffers();
      if (key === undefined) throw err;
      oversized.push(key);
      start = after(key);
      limit = PAGE_KEYS;
      continue;
    }
    revision ??= response.header.revision;
    kvs.push(...response.kvs);
    const last = response.kvs.at(-1);
    if (!response.more || last === undefined) break;
    start = after(last.key);
    limit = Math.min(PAGE_KEYS, limit * 2);
  }
  return { revision: Number(revision), kvs, oversized };
}

/** The response exceeded the client's receive limit (gRPC RESOURCE_EXHAUSTED). */
function tooLarge(err: unknown): boolean {
  return err instanceof Error && /RESOURCE_EXHAUSTED|larger than max/i.test(err.message);
}

/** The smallest key after `key`. */
function after(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

/** The first key past every key that starts with `prefix` (etcd's range end for a prefix). */
function prefixEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if ((prefix[i] as number) < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i] = (end[i] as number) + 1;
      return end;
    }
  }
  // All 0xff (or empty): to the end of the key space.
  return Buffer.from([0]);
}
