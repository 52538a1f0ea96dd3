/**
 * The JSON depth guard (internal/response.ts) that every response body passes before `JSON.parse`:
 * its shortcut (a text with few `{` / `[` cannot nest deep) must agree with the full scan.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { MAX_JSON_DEPTH, TOO_DEEP, nestsDeeperThan, tryJson } from '../src/internal/response.js';

/** The reference: the deepest nesting of `{` / `[` outside strings, character by character. */
function depthOf(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') deepest = Math.max(deepest, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return deepest;
}

const nested = (levels: number): string => `${'{"a":['.repeat(levels)}1${']}'.repeat(levels)}`;

describe('nestsDeeperThan', () => {
  it('agrees with a full scan for any JSON value and any limit', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (text, max) => {
        expect(nestsDeeperThan(text, max)).toBe(depthOf(text) > max);
      }),
      { numRuns: 500 },
    );
  });

  it('counts nesting, not openers: a flat list of many objects is not deep', () => {
    const flat = `[${Array.from({ length: 500 }, () => '{"a":[1]}').join(',')}]`;
    expect(nestsDeeperThan(flat, MAX_JSON_DEPTH)).toBe(false);
    expect(tryJson(Buffer.from(flat))).toHaveLength(500);
  });

  it('ignores openers inside strings, and refuses one level past the limit', () => {
    expect(nestsDeeperThan(JSON.stringify({ a: '{['.repeat(200) }), MAX_JSON_DEPTH)).toBe(false);
    // nested(n) opens 2n levels: 32 reach the limit exactly, 33 go past it.
    expect(tryJson(Buffer.from(nested(32)))).toBeInstanceOf(Object);
    expect(tryJson(Buffer.from(nested(33)))).toBe(TOO_DEEP);
  });
});
