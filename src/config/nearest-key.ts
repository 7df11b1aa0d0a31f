import leven from 'leven';

/**
 * The valid key closest to a mistyped one by edit distance (Levenshtein), for
 * "did you mean" hints; undefined when nothing is close enough to be a
 * plausible typo (more than a third of the longer name differs, at least 2).
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const typed = key.toLowerCase();
  for (const candidate of known) {
    const limit = Math.max(2, Math.floor(Math.max(candidate.length, typed.length) / 3));
    const distance = leven(typed, candidate, { maxDistance: limit + 1 });
    // One name the start of the other (`connect` for `connect-timeout`, `mapping` for `map`) is a likely slip too.
    const prefix = Math.min(typed.length, candidate.length) >= 3 && (candidate.startsWith(typed) || typed.startsWith(candidate));
    const score = prefix ? Math.min(distance, limit) : distance;
    if (score <= limit && score < bestDistance) {
      best = candidate;
      bestDistance = score;
    }
  }
  return best;
}

/** `unknown key "mapping" in config file "f.yaml": did you mean "map"?`, or the keys there are. */
export function unknownKeyMessage(key: string, where: string, known: readonly string[]): string {
  const near = nearestKey(key, known);
  return near !== undefined ? `unknown key "${key}" in ${where}: did you mean "${near}"?` : `unknown key "${key}" in ${where}: expected one of ${known.join(', ')}`;
}
