import type { Io } from './io.js';

/** Writes one JSON object as one line (JSON Lines): the only thing `--json` puts on stdout. */
export function writeJsonLine(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value)}\n`);
}

/** A value as one line of human output: arrays space-separated, objects as JSON. */
function displayValue(value: unknown): string {
  if (Array.isArray(value) && value.every((item) => typeof item !== 'object' || item === null)) {
    return value.map(String).join(' ');
  }
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** Writes `key  value` lines with the values aligned, for people at a terminal. */
export function writeTable(io: Io, rows: ReadonlyArray<readonly [string, unknown]>): void {
  const width = Math.max(0, ...rows.map(([key]) => key.length));
  for (const [key, value] of rows) io.stdout.write(`${key.padEnd(width)}  ${displayValue(value)}\n`);
}
