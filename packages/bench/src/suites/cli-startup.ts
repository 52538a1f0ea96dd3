/**
 * The `tessera` command's cold start: `tessera --help` (the built `packages/cli/dist/bin.js`)
 * against `node -e 0`, each spawned afresh, interleaved, the median wall time per start.
 *
 * Target (the issue of the CLI): within 3x of `node -e 0`.
 *
 * Environment: `BENCH_CLI_STARTS` starts per contender per round (default 10); `BENCH_ROUNDS`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { integerFromEnv } from '../env.js';
import { median } from '../measure.js';
import type { Suite, SuiteContext, SuiteReport } from '../suite.js';
import { formatRatio, formatTable } from '../table.js';

const TARGET_RATIO = 3;
const BIN = fileURLToPath(new URL('../../../cli/dist/bin.js', import.meta.url));

/** One start's wall time, ms; the process must succeed. */
function start(args: readonly string[]): number {
  const began = performance.now();
  const result = spawnSync(process.execPath, args, {
    stdio: 'ignore',
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  const took = performance.now() - began;
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited with ${String(result.status)}`);
  return took;
}

export const cliStartupSuite: Suite = {
  name: 'cli-startup',
  title: 'The tessera command: cold start of `tessera --help` against `node -e 0`',
  async run(context: SuiteContext): Promise<SuiteReport> {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: pnpm bench builds it (tsc -b) first`);
    const starts = integerFromEnv('BENCH_CLI_STARTS', 10);
    const rounds = context.config.rounds;
    const contenders = [
      { name: 'node -e 0', args: ['-e', '0'] },
      { name: 'tessera --help', args: [BIN, '--help'] },
    ];
    for (const contender of contenders) start(contender.args); // warm the file cache
    const perRound = contenders.map(() => [] as number[]);
    for (let round = 0; round < rounds; round++) {
      contenders.forEach((contender, i) => {
        const times = Array.from({ length: starts }, () => start(contender.args));
        perRound[i]!.push(median(times));
      });
    }
    const [baseline, cli] = perRound.map((times) => median(times)) as [number, number];
    const ratios = perRound[1]!.map((time, round) => time / perRound[0]![round]!);
    const ratio = median(ratios);
    const table = formatTable(
      [
        { heading: 'spawned afresh, median of each round' },
        { heading: 'ms per start', align: 'right' },
        { heading: 'rounds (ms)', align: 'right' },
        { heading: 'vs node -e 0', align: 'right' },
      ],
      contenders.map((contender, i) => [
        contender.name,
        (i === 0 ? baseline : cli).toFixed(1),
        perRound[i]!.map((t) => t.toFixed(0)).join(' / '),
        i === 0 ? '1.00x' : formatRatio(ratio),
      ]),
    );
    return {
      table,
      targets: [
        {
          description: `tessera --help / node -e 0 (cold start) <= ${TARGET_RATIO}`,
          measured: ratio,
          met: ratio <= TARGET_RATIO,
        },
      ],
    };
  },
};
