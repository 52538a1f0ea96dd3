/** Plain-text (Markdown) tables for the benchmark report. */

/** How a column is aligned. */
export type Alignment = 'left' | 'right';

/** A column: its heading and alignment. */
export interface Column {
  heading: string;
  align?: Alignment;
}

/** Renders a Markdown table whose columns are padded to line up in a terminal too. */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((column, i) =>
    Math.max(column.heading.length, 3, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const pad = (text: string, i: number): string =>
    columns[i]?.align === 'right' ? text.padStart(widths[i]!) : text.padEnd(widths[i]!);
  const line = (cells: readonly string[]): string => `| ${cells.map(pad).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (columns[i]?.align === 'right' ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [
    line(columns.map((c) => c.heading)),
    rule,
    ...rows.map((row) => line(columns.map((_, i) => row[i] ?? ''))),
  ].join('\n');
}

/** A whole number with thousands separators: `12,345`. */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** A ratio with two decimals and an `x`: `0.47x`. */
export function formatRatio(value: number): string {
  return `${value.toFixed(2)}x`;
}

/** Milliseconds, with more decimals for small values: `0.42 ms`, `12.3 ms`, `1,234 ms`. */
export function formatMs(ms: number): string {
  return ms >= 100 ? `${formatCount(ms)} ms` : `${ms.toFixed(ms >= 10 ? 1 : 2)} ms`;
}

/** Bytes as a whole number: `1,234 B`. */
export function formatBytes(bytes: number): string {
  return `${formatCount(bytes)} B`;
}
