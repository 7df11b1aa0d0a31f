import { describe, expect, it } from 'vitest';
import { exitStatus } from '../../src/supervisor/exit-status.js';

describe('exitStatus', () => {
  it.each([
    [0, null, 0],
    [42, null, 42],
    [null, 'SIGKILL', 137],
    [null, 'SIGTERM', 143],
    [null, 'SIGHUP', 129],
    [null, 'SIGUSR1', 138],
  ] as const)('code %s, signal %s → %i', (code, signal, status) => {
    expect(exitStatus(code, signal)).toBe(status);
  });
});
