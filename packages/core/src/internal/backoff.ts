/**
 * Exponential backoff with jitter: `minDelayMs · 2^attempt`, capped at `maxDelayMs`, then a random
 * point in the upper half, so many clients that failed together do not come back together.
 *
 * @param attempt - 0 for the first retry.
 * @returns the delay in milliseconds, in `[ceiling / 2, ceiling]`.
 */
export function backoffMs(attempt: number, minDelayMs: number, maxDelayMs: number): number {
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
