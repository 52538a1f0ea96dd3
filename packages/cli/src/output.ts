import picocolors from 'picocolors';
import { isTerminal, type Io, type OutputStream } from './io.js';

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

/** The colour functions of one stream: plain text where colour is off. */
export type Colours = ReturnType<typeof picocolors.createColors>;

/**
 * Colour for a stream: only on a terminal, never with `NO_COLOR` set to anything but the empty
 * string (no-color.org) or `TERM=dumb`; `FORCE_COLOR` (not `0`) turns it on anywhere.
 */
export function coloursFor(stream: OutputStream, env: NodeJS.ProcessEnv): Colours {
  const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0';
  const refused = (env.NO_COLOR !== undefined && env.NO_COLOR !== '') || env.TERM === 'dumb';
  return picocolors.createColors(!refused && (forced || isTerminal(stream)));
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const SPINNER_INTERVAL_MS = 80;

/**
 * Shows `label` with a spinner on stderr while `work` runs, when stderr is a terminal; the line is
 * erased when it settles. Elsewhere it only awaits `work`, writing nothing.
 */
export async function withProgress<T>(io: Io, label: string, work: Promise<T>): Promise<T> {
  if (!isTerminal(io.stderr)) return work;
  let frame = 0;
  const draw = (): void => {
    io.stderr.write(`\r${SPINNER[frame++ % SPINNER.length]} ${label}`);
  };
  draw();
  const timer = setInterval(draw, SPINNER_INTERVAL_MS);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    io.stderr.write(ERASE_LINE);
  }
}

/** Carriage return and erase to the end of the line (ECMA-48 EL). */
export const ERASE_LINE = '\r\u001b[K';
