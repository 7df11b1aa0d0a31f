/**
 * Where a health-checked instance stands: healthy or not, and how many
 * results in a row point the other way.
 */
export interface HealthState {
  readonly healthy: boolean;
  /** Passes in a row while unhealthy (0 while healthy). */
  readonly passes: number;
  /** Failures in a row while healthy (0 while unhealthy). */
  readonly failures: number;
}

export interface RiseFall {
  /** Passes in a row that make an unhealthy instance healthy, ≥ 1. */
  rise: number;
  /** Failures in a row that make a healthy instance unhealthy, ≥ 1. */
  fall: number;
}

/**
 * Every health-checked instance starts unhealthy and becomes healthy after
 * `rise` passes in a row, as Consul checks start critical and HAProxy servers
 * with `init-state down` (HAProxy's own default is to start up and fall after
 * a single failure): srvlink often starts before the app it registers is
 * listening, and an instance must not be in DNS before it has been seen
 * answering.
 */
export const INITIAL_HEALTH_STATE: HealthState = Object.freeze({ healthy: false, passes: 0, failures: 0 });

/**
 * The state after one more check result (the HAProxy rise/fall rule): `rise`
 * passes in a row make an unhealthy instance healthy, `fall` failures in a
 * row make a healthy one unhealthy; a result that agrees with the current
 * state resets the count of the other kind.
 */
export function nextHealthState(state: HealthState, passed: boolean, { rise, fall }: RiseFall): HealthState {
  if (state.healthy) {
    if (passed) return state.failures === 0 ? state : { healthy: true, passes: 0, failures: 0 };
    const failures = state.failures + 1;
    return failures >= fall ? { healthy: false, passes: 0, failures: 0 } : { healthy: true, passes: 0, failures };
  }
  if (!passed) return state.passes === 0 ? state : { healthy: false, passes: 0, failures: 0 };
  const passes = state.passes + 1;
  return passes >= rise ? { healthy: true, passes: 0, failures: 0 } : { healthy: false, passes, failures: 0 };
}
