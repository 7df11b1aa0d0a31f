import { ConsecutiveBreaker, circuitBreaker, handleWhen, retry } from 'cockatiel';
import { GRPCResourceExhastedError, isRecoverableError, type IOptions } from 'etcd3';

// Loaded with the etcd client only (`createEtcdClient`): cockatiel and etcd3 stay out of a process without etcd.

/**
 * An error that says the member is failing (unreachable, unavailable):
 * retried, and counted by the breaker that stops using a failing member. A
 * response over the client's receive limit (RESOURCE_EXHAUSTED, which etcd3
 * counts as recoverable) comes from a member that works: asking again gets
 * the same answer, and the zone's paged read asks smaller pages instead.
 */
function hostFailure(err: Error): boolean {
  return isRecoverableError(err) && !(err instanceof GRPCResourceExhastedError);
}

/**
 * Retries and the breaker per member: etcd3's defaults, except that a
 * member is tried again 1 s after it failed (etcd3 waits 5 s: a restarted
 * etcd should be used again within a second) and a response too large for
 * the client is not a failure of the member (`hostFailure`).
 */
export function etcdFaultHandling(): NonNullable<IOptions['faultHandling']> {
  return {
    host: () => circuitBreaker(handleWhen(hostFailure), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
    global: retry(handleWhen(hostFailure), { maxAttempts: 3 }),
  };
}
