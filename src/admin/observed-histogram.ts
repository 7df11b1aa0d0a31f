import { seriesKey, type Labels } from './observed-counter.js';

/** One series of an `ObservedHistogram`: counts per bucket (not cumulative), sum and count. */
export interface HistogramSeries {
  labels: Labels;
  /** Observations per upper bound of `bounds`, each counted in the first bucket that holds it. */
  buckets: number[];
  sum: number;
  count: number;
}

/**
 * A labelled histogram srvlink observes itself, kept in plain arrays until a
 * scrape renders it (see `ObservedCounter`): observations go in the first
 * bucket whose upper bound holds them, a value above every bound only in
 * the count (the `+Inf` bucket), as Prometheus clients do.
 */
export class ObservedHistogram {
  readonly bounds: readonly number[];
  readonly #labelNames: readonly string[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(labelNames: readonly string[], bounds: readonly number[]) {
    this.#labelNames = labelNames;
    this.bounds = bounds;
  }

  /** Count `value` in the series of `labels`; a value that is no finite number is not counted. */
  observe(labels: Labels, value: number): void {
    if (!Number.isFinite(value)) return;
    const key = seriesKey(this.#labelNames, labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: { ...labels }, buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    const bucket = this.bounds.findIndex((bound) => value <= bound);
    if (bucket >= 0) series.buckets[bucket] = (series.buckets[bucket] ?? 0) + 1;
    series.sum += value;
    series.count += 1;
  }

  /** Drop the series of `labels`. */
  remove(labels: Labels): void {
    this.#series.delete(seriesKey(this.#labelNames, labels));
  }

  /** Every series, in the order first seen. */
  series(): Iterable<HistogramSeries> {
    return this.#series.values();
  }
}
