/** Reading `BENCH_*` settings from the environment. */

/** A non-negative integer from the environment variable `name`, or `fallback` when it is unset or empty. */
export function integerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return value;
}

/** The comma-separated names in the environment variable `name`; `undefined` when unset or empty. */
export function namesFromEnv(name: string): ReadonlySet<string> | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  return new Set(
    raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}
