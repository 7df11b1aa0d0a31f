import { describe, expect, it } from 'vitest';
import { INITIAL_HEALTH_STATE, nextHealthState, type HealthState } from '../../src/registry/health-state.js';

/** Run results (`+` pass, `-` fail) from the initial state; the health after each, as `H` or `u`. */
function trace(results: string, rise: number, fall: number): string {
  let state: HealthState = INITIAL_HEALTH_STATE;
  let out = '';
  for (const r of results) {
    state = nextHealthState(state, r === '+', { rise, fall });
    out += state.healthy ? 'H' : 'u';
  }
  return out;
}

describe('nextHealthState', () => {
  it('starts unhealthy', () => {
    expect(INITIAL_HEALTH_STATE).toEqual({ healthy: false, passes: 0, failures: 0 });
  });

  it.each([
    // results,          rise, fall, health after each
    ['++', 2, 3, 'uH'],
    ['+', 1, 1, 'H'],
    ['+-++', 2, 3, 'uuuH'],
    ['+++', 3, 1, 'uuH'],
    ['++--', 2, 3, 'uHHH'],
    ['++---', 2, 3, 'uHHHu'],
    ['++--+---', 2, 3, 'uHHHHHHu'],
    ['++-', 2, 1, 'uHu'],
    ['++-+-+', 2, 2, 'uHHHHH'],
    ['+-+-+-', 1, 1, 'HuHuHu'],
    ['----', 2, 3, 'uuuu'],
    ['++---+++', 2, 3, 'uHHHuuHH'],
  ])('%s with rise %i, fall %i → %s', (results, rise, fall, expected) => {
    expect(trace(results, rise, fall)).toBe(expected);
  });

  it('counts the streak that points away from the current state', () => {
    const riseFall = { rise: 3, fall: 3 };
    let s = nextHealthState(INITIAL_HEALTH_STATE, true, riseFall);
    expect(s).toEqual({ healthy: false, passes: 1, failures: 0 });
    s = nextHealthState(nextHealthState(s, true, riseFall), true, riseFall);
    expect(s).toEqual({ healthy: true, passes: 0, failures: 0 });
    s = nextHealthState(s, false, riseFall);
    expect(s).toEqual({ healthy: true, passes: 0, failures: 1 });
    expect(nextHealthState(s, true, riseFall)).toEqual({ healthy: true, passes: 0, failures: 0 });
  });
});
