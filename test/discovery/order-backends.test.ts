import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BackendOrder, orderBackends } from '../../src/discovery/order-backends.js';
import { seededRandom, sequence } from '../helpers/seeded-random.js';

const b = (name: string, priority: number, weight: number): { name: string; priority: number; weight: number } => ({ name, priority, weight });

describe('orderBackends (RFC 2782)', () => {
  it.each([
    // [description, backends, random draws, expected order]
    ['one backend', [b('a', 10, 5)], [0.9], ['a']],
    ['priority ascending regardless of input order', [b('c', 30, 1), b('a', 10, 1), b('b', 20, 1)], [0], ['a', 'b', 'c']],
    // Weights 3 and 1, sum 4: draws map to 1..4; 1..3 select a (running sum 3), 4 selects b.
    ['a low draw picks the first weighted record', [b('a', 10, 3), b('b', 10, 1)], [0.1, 0], ['a', 'b']],
    ['a draw just under 3/4 still picks the first', [b('a', 10, 3), b('b', 10, 1)], [0.74, 0], ['a', 'b']],
    ['a draw from 3/4 picks the second', [b('a', 10, 3), b('b', 10, 1)], [0.75, 0], ['b', 'a']],
    // With a weight-0 record present the draw is over 0..sum and 0 selects it.
    ['a zero draw selects a weight-0 record', [b('w', 10, 5), b('z', 10, 0)], [0, 0], ['z', 'w']],
    ['any other draw skips the weight-0 record', [b('w', 10, 5), b('z', 10, 0)], [0.5, 0], ['w', 'z']],
    ['all zero weights: uniform choice', [b('x', 10, 0), b('y', 10, 0), b('z', 10, 0)], [0.99, 0.0], ['z', 'x', 'y']],
  ])('%s', (_what, backends, draws, expected) => {
    expect(orderBackends(backends, sequence(...draws)).map((x) => x.name)).toEqual(expected);
  });

  it('does not modify its input', () => {
    const input = [b('a', 20, 1), b('b', 10, 1)];
    const copy = structuredClone(input);
    orderBackends(input, Math.random);
    expect(input).toEqual(copy);
  });

  it('gives weights 3:1 a 75 % ± 2 % share of first picks over 10,000 draws', () => {
    const random = seededRandom(2782);
    const backends = [b('heavy', 10, 3), b('light', 10, 1), b('backup', 20, 1)];
    let heavy = 0;
    const picks = 10_000;
    for (let i = 0; i < picks; i++) if (orderBackends(backends, random)[0]?.name === 'heavy') heavy++;
    expect(heavy / picks).toBeGreaterThan(0.73);
    expect(heavy / picks).toBeLessThan(0.77);
  });

  it('gives a weight-0 record only a small chance against weighted ones', () => {
    const random = seededRandom(7);
    let zeroFirst = 0;
    for (let i = 0; i < 10_000; i++) if (orderBackends([b('w', 10, 99), b('z', 10, 0)], random)[0]?.name === 'z') zeroFirst++;
    // Expected 1 in 100 (a draw of exactly 0 out of 0..99).
    expect(zeroFirst).toBeGreaterThan(40);
    expect(zeroFirst).toBeLessThan(200);
  });

  it('returns a permutation with priority tiers strictly respected (property)', () => {
    const backend = fc.record({ name: fc.string(), priority: fc.integer({ min: 0, max: 3 }), weight: fc.integer({ min: 0, max: 100 }) });
    fc.assert(
      fc.property(fc.array(backend, { maxLength: 20 }), fc.integer(), (backends, seed) => {
        const ordered = orderBackends(backends, seededRandom(seed));
        expect(ordered).toHaveLength(backends.length);
        expect(new Set(ordered)).toEqual(new Set(backends));
        for (let i = 1; i < ordered.length; i++) {
          expect((ordered[i] as { priority: number }).priority).toBeGreaterThanOrEqual((ordered[i - 1] as { priority: number }).priority);
        }
      }),
    );
  });
});

/** RFC 2782's walk, literally: a rescan of the remaining records per pick (O(n²)); the specification the fast order must match draw for draw. */
function referenceOrder<T extends { priority: number; weight: number }>(backends: readonly T[], random: () => number): T[] {
  const draw = (n: number): number => Math.min(n - 1, Math.floor(random() * n));
  const ordered: T[] = [];
  for (const priority of [...new Set(backends.map((x) => x.priority))].sort((x, y) => x - y)) {
    const tier = backends.filter((x) => x.priority === priority);
    const zero = tier.filter((x) => x.weight <= 0);
    const weighted = tier.filter((x) => x.weight > 0);
    while (zero.length + weighted.length > 0) {
      const sum = weighted.reduce((total, x) => total + x.weight, 0);
      if (weighted.length === 0) {
        ordered.push(...zero.splice(draw(zero.length), 1));
        continue;
      }
      const pick = zero.length > 0 ? draw(sum + 1) : 1 + draw(sum);
      if (pick === 0) {
        ordered.push(...zero.splice(draw(zero.length), 1));
        continue;
      }
      let running = 0;
      ordered.push(...weighted.splice(weighted.findIndex((x) => (running += x.weight) >= pick), 1));
    }
  }
  return ordered;
}

describe('orderBackends at scale', () => {
  it('orders exactly as the literal RFC 2782 walk, draw for draw (property)', () => {
    const backend = fc.record({ name: fc.string(), priority: fc.integer({ min: 0, max: 3 }), weight: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 65535 })) });
    fc.assert(
      fc.property(fc.array(backend, { maxLength: 200 }), fc.integer(), (backends, seed) => {
        expect(orderBackends(backends, seededRandom(seed))).toEqual(referenceOrder(backends, seededRandom(seed)));
      }),
      { numRuns: 300 },
    );
  });

  it('orders 200,000 backends of one priority (a rescan per pick would take minutes), weights proportional among first picks', () => {
    const backends = Array.from({ length: 200_000 }, (_, i) => b(`i${i}`, 10, i < 100_000 ? 3 : i < 199_000 ? 1 : 0));
    const random = seededRandom(10_000);
    const ordered = orderBackends(backends, random);
    expect(new Set(ordered).size).toBe(backends.length);
    // Weight 300,000 against 99,000 (and 1,000 of weight 0): the heavy half takes ~75 % of the first 1,000 places.
    const heavy = ordered.slice(0, 1000).filter((x) => Number(x.name.slice(1)) < 100_000).length;
    expect(heavy).toBeGreaterThan(700);
    expect(heavy).toBeLessThan(810);
    // Zero-weight records come last once weighted ones are gone (or by the rare draw of 0).
    expect(ordered.slice(-1000).filter((x) => x.weight === 0).length).toBeGreaterThan(900);
  }, 20_000);
});

describe('BackendOrder (one set, many orders)', () => {
  const backend = fc.record({ name: fc.string(), priority: fc.integer({ min: 0, max: 3 }), weight: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 1000 })) });

  it('draws each order as orderBackends does, draw for draw, however cursors of one set interleave (property)', () => {
    fc.assert(
      fc.property(fc.array(backend, { maxLength: 50 }), fc.array(fc.integer(), { minLength: 1, maxLength: 5 }), fc.integer(), (backends, seeds, schedule) => {
        const order = new BackendOrder(backends);
        expect(order.size).toBe(backends.length);
        const cursors = seeds.map((seed) => ({ cursor: order.draw(seededRandom(seed)), got: [] as typeof backends, done: false }));
        // Read the cursors in an interleaving picked by `schedule`: one cursor's copy-on-write must never show in another.
        const pickCursor = seededRandom(schedule);
        while (cursors.some((c) => !c.done)) {
          const open = cursors.filter((c) => !c.done);
          const c = open[Math.floor(pickCursor() * open.length)] as (typeof cursors)[number];
          const next = c.cursor.next();
          if (next === undefined) c.done = true;
          else c.got.push(next);
        }
        seeds.forEach((seed, i) => expect(cursors[i]?.got).toEqual(orderBackends(backends, seededRandom(seed))));
      }),
      { numRuns: 200 },
    );
  });

  it('keeps giving undefined once an order is exhausted', () => {
    const cursor = new BackendOrder([b('a', 10, 1)]).draw(sequence(0.5));
    expect(cursor.next()?.name).toBe('a');
    expect(cursor.next()).toBeUndefined();
    expect(cursor.next()).toBeUndefined();
  });

  it('draws a first pick with one random number and weights 3:1 as 75 % ± 2 % of 10,000 first picks', () => {
    const order = new BackendOrder([b('heavy', 10, 3), b('light', 10, 1), b('backup', 20, 1)]);
    const random = seededRandom(2782);
    let calls = 0;
    const counted = (): number => {
      calls++;
      return random();
    };
    let heavy = 0;
    for (let i = 0; i < 10_000; i++) if (order.draw(counted).next()?.name === 'heavy') heavy++;
    expect(calls).toBe(10_000);
    expect(heavy / 10_000).toBeGreaterThan(0.73);
    expect(heavy / 10_000).toBeLessThan(0.77);
  });
});
