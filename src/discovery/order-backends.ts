/** What ordering needs of a backend: its SRV priority and weight. */
export interface Weighted {
  priority: number;
  weight: number;
}

/**
 * Order SRV targets the way RFC 2782 ("Usage rules") says a client tries them:
 * priority ascending; inside one priority, repeated weighted random selection
 * without replacement.
 *
 * Weight 0 follows the RFC's intent ("a very small chance of being selected"
 * when weighted records are present): the RFC draws from [0, sum] with the
 * zero-weight records first, so they share the single draw of 0. Taken
 * literally that draw falls to the first weighted record when no record weighs
 * 0, skewing 3:1 weights to 4:1; here the 0 draw exists only when zero-weight
 * records do, which keeps weighted records exactly proportional. When every
 * remaining record weighs 0 the choice among them is uniform.
 *
 * `random` returns a number in [0, 1) (Math.random's contract); inject a
 * seeded one in tests. The input is not modified.
 */
export function orderBackends<T extends Weighted>(backends: readonly T[], random: () => number = Math.random): T[] {
  const byPriority = new Map<number, T[]>();
  for (const backend of backends) {
    const tier = byPriority.get(backend.priority);
    if (tier) tier.push(backend);
    else byPriority.set(backend.priority, [backend]);
  }
  const ordered: T[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const tier = byPriority.get(priority) as T[];
    const zero = tier.filter((b) => b.weight <= 0);
    const weighted = tier.filter((b) => b.weight > 0);
    while (zero.length + weighted.length > 0) {
      const sum = weighted.reduce((total, b) => total + b.weight, 0);
      if (weighted.length === 0) {
        ordered.push(...zero.splice(draw(random, zero.length), 1));
        continue;
      }
      // Draws 1..sum select weighted records in proportion; 0 (only when
      // zero-weight records remain) selects one of those.
      const pick = zero.length > 0 ? draw(random, sum + 1) : 1 + draw(random, sum);
      if (pick === 0) {
        ordered.push(...zero.splice(draw(random, zero.length), 1));
        continue;
      }
      let running = 0;
      const index = weighted.findIndex((b) => (running += b.weight) >= pick);
      ordered.push(...weighted.splice(index, 1));
    }
  }
  return ordered;
}

/** A uniform integer in [0, n). */
function draw(random: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}
