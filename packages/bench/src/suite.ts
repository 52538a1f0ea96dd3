/** What a benchmark suite is, and what `index.ts` hands it. */
import type { MeasureOptions } from './measure.js';
import type { StaticTokenServer } from './static-token-server.js';

/** Settings of one `pnpm bench` run, from the environment (see `readConfig` in `index.ts`). */
export interface BenchConfig extends MeasureOptions {
  /** Only these contenders run (`BENCH_ONLY=tessera,undici`); all when undefined. */
  only: ReadonlySet<string> | undefined;
}

/** What a suite gets from the runner. */
export interface SuiteContext {
  config: BenchConfig;
  /** The shared static token server, started on first use and stopped after all suites. */
  tokenServer(): Promise<StaticTokenServer>;
}

/** A performance target from DESIGN.md ("What it must reach") and whether this run met it. */
export interface TargetCheck {
  /** e.g. `'client_credentials grant: tessera / undici >= 0.5'`. */
  description: string;
  /** The measured value, `undefined` when a contender it needs did not run. */
  measured: number | undefined;
  /** How `measured` is printed (e.g. `'1 request'`, `'38 ms'`); default: as a ratio, `0.73x`. */
  shown?: string;
  /** Whether `measured` satisfies the target. */
  met: boolean | undefined;
}

/** A suite's printed table and its targets. */
export interface SuiteReport {
  /** The Markdown table of figures. */
  table: string;
  targets: readonly TargetCheck[];
}

/** A benchmark suite: one concern, measured against itself in one run. */
export interface Suite {
  /** Short name, used in `BENCH_SUITES`. */
  name: string;
  /** One line, printed as the suite's heading. */
  title: string;
  run(context: SuiteContext): Promise<SuiteReport>;
}
