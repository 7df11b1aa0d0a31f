/**
 * Where a setting's value came from, so that errors name what the user typed:
 * the flag, or the environment variable standing in for it.
 */
export interface OptionSource {
  flag: string;
  env?: string;
  from: 'cli' | 'env' | 'config' | 'default';
}

/** `--zone` or `SRVLINK_ZONE (for --zone)`, for error messages. */
export function describeSource(source: OptionSource): string {
  return source.from === 'env' && source.env ? `${source.env} (for ${source.flag})` : source.flag;
}

/** Split repeatable values, allowing commas (how lists arrive through environment variables). */
export function splitList(values: readonly string[] | string | undefined): string[] {
  if (values === undefined) return [];
  const list = typeof values === 'string' ? [values] : values;
  return list.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}
