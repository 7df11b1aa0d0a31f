// Apart from the registration itself, which needs etcd3: reading a --register spec loads no etcd client.

/**
 * The defaults of the optional settings, for help texts and config.
 *
 * - `ttl` 10 s: an instance that dies without deregistering (a crash, a lost
 *   machine) leaves DNS within 10 s; keepalives go every ttl/3 (the etcd Go
 *   client's rhythm), and etcd may be unreachable for a few seconds (a leader
 *   election takes one or two) without the key disappearing.
 * - `interval` 2 s, `rise` 2, `fall` 3: HAProxy's defaults (`inter 2s rise 2 fall 3`).
 * - retries 1 s to 10 s: etcd coming back is noticed within 10 s.
 */
export const REGISTRATION_DEFAULTS = {
  ttl: 10,
  interval: 2000,
  rise: 2,
  fall: 3,
  retryMin: 1000,
  retryMax: 10_000,
  callTimeout: 5000,
} as const;
