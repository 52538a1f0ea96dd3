/**
 * Freezing, the one way: what the SDK hands out (server metadata, stored token sets' `extra`) cannot
 * be changed under the code that shares it.
 */

/** Freezes `value` and every object or array inside it, in place, and returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}
