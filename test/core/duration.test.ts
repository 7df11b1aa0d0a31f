import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/core/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['1.5m', 90_000],
    ['1h', 3_600_000],
    ['3', 3000],
  ])('%s is %i ms', (text, ms) => expect(parseDuration(text, '--timeout')).toBe(ms));

  it.each(['', 'soon', '-1s', '2 days'])('refuses %j', (text) => {
    expect(() => parseDuration(text, '--timeout')).toThrowError(/invalid --timeout/);
  });

  it('refuses what no timer can wait for (over 2^31-1 ms), takes the longest it can', () => {
    expect(parseDuration('2147483.647s', '--timeout')).toBe(2 ** 31 - 1);
    expect(() => parseDuration('600h', '--ttl-max')).toThrowError('invalid --ttl-max "600h": longer than the longest timer, 2147483.647s (about 24 days)');
  });
});

describe('formatDuration', () => {
  it.each([
    [300_000, '5m'],
    [3_600_000, '1h'],
    [1500, '1.5s'],
    [250, '250ms'],
    [0, '0ms'],
  ])('%i ms is %s, which parses back', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseDuration(text, 'x')).toBe(ms);
  });
});
