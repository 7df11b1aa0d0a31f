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
 * seeded one in tests. The input is not modified. For many orders of the
 * same set, build a `BackendOrder` once and draw from it.
 */
export function orderBackends<T extends Weighted>(backends: readonly T[], random: () => number = Math.random): T[] {
  const cursor = new BackendOrder(backends).draw(random);
  const ordered: T[] = [];
  for (let next = cursor.next(); next !== undefined; next = cursor.next()) ordered.push(next);
  return ordered;
}

/** One priority: its records split by weight, and their weights as trees that cursors copy before they change them. */
interface Tier<T> {
  weighted: readonly T[];
  zero: readonly T[];
  weights: WeightTree;
  /** Zero-weight records as weights of 1: the k-th remaining one is a uniform draw of k. */
  zeros: WeightTree;
}

/**
 * The RFC 2782 order of one set, prepared once (tiers, weight trees) so that
 * each new order is drawn lazily, one record per `next()`, and costs nothing
 * up front: a connection that takes the first backend draws once, in
 * O(log n), without copying anything; only a failover to a second record of
 * the same tier copies that tier's trees. Draw for draw the same order as
 * `orderBackends` with the same `random`.
 */
export class BackendOrder<T extends Weighted> {
  /** How many records an order holds. */
  readonly size: number;
  readonly #tiers: readonly Tier<T>[];

  constructor(backends: readonly T[]) {
    const byPriority = new Map<number, T[]>();
    for (const backend of backends) {
      const tier = byPriority.get(backend.priority);
      if (tier) tier.push(backend);
      else byPriority.set(backend.priority, [backend]);
    }
    this.#tiers = [...byPriority.keys()]
      .sort((a, b) => a - b)
      .map((priority) => {
        const tier = byPriority.get(priority) as T[];
        const zero = tier.filter((b) => b.weight <= 0);
        const weighted = tier.filter((b) => b.weight > 0);
        return { weighted, zero, weights: new WeightTree(weighted.map((b) => b.weight)), zeros: new WeightTree(zero.map(() => 1)) };
      });
    this.size = backends.length;
  }

  /** A new order, drawn as it is read. */
  draw(random: () => number = Math.random): OrderCursor<T> {
    return new OrderCursor(this.#tiers, random);
  }
}

/** One order being drawn: `next()` gives the next record, undefined after the last. */
export class OrderCursor<T extends Weighted> {
  readonly #tiers: readonly Tier<T>[];
  readonly #random: () => number;
  #tier = -1;
  #weights: WeightTree | undefined;
  #zeros: WeightTree | undefined;
  /** The trees are the tier's own, shared with every cursor: copy before changing them. */
  #shared = true;
  #weightedLeft = 0;
  #zerosLeft = 0;
  /** The last pick, not yet taken out of the trees (it is, on the next draw of the same tier). */
  #pendingIndex = -1;
  #pendingZero = false;
  #pendingWeight = 0;

  constructor(tiers: readonly Tier<T>[], random: () => number) {
    this.#tiers = tiers;
    this.#random = random;
  }

  next(): T | undefined {
    while (this.#weightedLeft + this.#zerosLeft === 0) {
      const tier = this.#tiers[++this.#tier];
      if (tier === undefined) {
        this.#tier = this.#tiers.length;
        return undefined;
      }
      this.#weights = tier.weights;
      this.#zeros = tier.zeros;
      this.#shared = true;
      this.#pendingIndex = -1;
      this.#weightedLeft = tier.weighted.length;
      this.#zerosLeft = tier.zero.length;
    }
    const tier = this.#tiers[this.#tier] as Tier<T>;
    this.#settle();
    const weights = this.#weights as WeightTree;
    const zeros = this.#zeros as WeightTree;
    if (this.#weightedLeft > 0) {
      // Draws 1..sum select weighted records in proportion; 0 (only when
      // zero-weight records remain) selects one of those.
      const sum = weights.total;
      const pick = zeros.total > 0 ? draw(this.#random, sum + 1) : 1 + draw(this.#random, sum);
      if (pick !== 0) {
        const index = weights.find(pick);
        const chosen = tier.weighted[index] as T;
        this.#pend(index, false, chosen.weight);
        this.#weightedLeft--;
        return chosen;
      }
    }
    const index = zeros.find(1 + draw(this.#random, zeros.total));
    this.#pend(index, true, 1);
    this.#zerosLeft--;
    return tier.zero[index] as T;
  }

  #pend(index: number, zero: boolean, weight: number): void {
    this.#pendingIndex = index;
    this.#pendingZero = zero;
    this.#pendingWeight = weight;
  }

  /** Take the previous pick out of the trees (without replacement), copying them first if they are the tier's. */
  #settle(): void {
    if (this.#pendingIndex < 0) return;
    if (this.#shared) {
      this.#weights = (this.#weights as WeightTree).clone();
      this.#zeros = (this.#zeros as WeightTree).clone();
      this.#shared = false;
    }
    (this.#pendingZero ? (this.#zeros as WeightTree) : (this.#weights as WeightTree)).add(this.#pendingIndex, -this.#pendingWeight);
    this.#pendingIndex = -1;
  }
}

/** A uniform integer in [0, n). */
function draw(random: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}
