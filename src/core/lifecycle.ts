/**
 * The shape of every long-lived part (docs/architecture.md §4): `start()` resolves once it
 * is listening, `address()` tells where, `close()` is graceful and safe to
 * call twice.
 */
export interface Service<A> {
  start(): Promise<void>;
  address(): A;
  close(): Promise<void>;
}
