/** Label values by label name. */
export type Labels = Record<string, string>;

/**
 * A labelled counter srvlink increments itself, kept in a plain map: the
 * metrics library is loaded only when a scrape asks for the page (a process
 * never scraped never pays for it), and the page reads the values from here.
 * Series keep the order they were first seen in, as the library's do.
 */
export class ObservedCounter {
  readonly #labelNames: readonly string[];
  readonly #series = new Map<string, { labels: Labels; value: number }>();

  constructor(labelNames: readonly string[]) {
    this.#labelNames = labelNames;
  }

  /** Add `by` (default 1) to the series of `labels`. */
  inc(labels: Labels, by = 1): void {
    const key = seriesKey(this.#labelNames, labels);
    const series = this.#series.get(key);
    if (series) series.value += by;
    else this.#series.set(key, { labels: { ...labels }, value: by });
  }

  /** Drop the series of `labels`. */
  remove(labels: Labels): void {
    this.#series.delete(seriesKey(this.#labelNames, labels));
  }

  /** Every series, in the order first seen. */
  samples(): Iterable<readonly [Labels, number]> {
    return [...this.#series.values()].map((s) => [s.labels, s.value] as const);
  }
}

/** One key per combination of label values, in the order of `labelNames`. */
export function seriesKey(labelNames: readonly string[], labels: Labels): string {
  return JSON.stringify(labelNames.map((name) => labels[name] ?? ''));
}
