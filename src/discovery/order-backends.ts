import { WeightTree } from './weight-tree.js';

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
 * Each draw selects the first remaining record whose running sum of weights
 * reaches it, as the RFC's walk does; running sums come from a Fenwick tree
 * (`WeightTree`), so a tier of n records is ordered in O(n log n), not
 * O(n²): a service of 10,000 instances orders in milliseconds.
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
    orderTier(byPriority.get(priority) as T[], random, ordered);
  }
  return ordered;
}

/** One priority tier, appended to `ordered` in RFC 2782 weighted order. */
function orderTier<T extends Weighted>(tier: readonly T[], random: () => number, ordered: T[]): void {
  const zero = tier.filter((b) => b.weight <= 0);
  const weighted = tier.filter((b) => b.weight > 0);
  const weights = new WeightTree(weighted.map((b) => b.weight));
  // Zero-weight records left, as weights of 1: the k-th remaining one is a uniform draw of k.
  const zeros = new WeightTree(zero.map(() => 1));
  const takeZero = (): void => {
    const index = zeros.find(1 + draw(random, zeros.total));
    zeros.add(index, -1);
    ordered.push(zero[index] as T);
  };
  let weightedLeft = weighted.length;
  while (weightedLeft > 0) {
    // Draws 1..sum select weighted records in proportion; 0 (only when
    // zero-weight records remain) selects one of those.
    const sum = weights.total;
    const pick = zeros.total > 0 ? draw(random, sum + 1) : 1 + draw(random, sum);
    if (pick === 0) {
      takeZero();
      continue;
    }
    const index = weights.find(pick);
    const chosen = weighted[index] as T;
    weights.add(index, -chosen.weight);
    weightedLeft--;
    ordered.push(chosen);
  }
  while (zeros.total > 0) takeZero();
}

/** A uniform integer in [0, n). */
function draw(random: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}
