/**
 * `pnpm bench`: runs every suite in one process, against one static token server, and prints the
 * machine, the settings, a table per suite and the DESIGN.md targets.
 *
 * Environment:
 * - `BENCH_OPS` operations per timed run (default 20000), `BENCH_WARMUP` (default 2000),
 *   `BENCH_CONCURRENCY` (default 16), `BENCH_ROUNDS` (default 5; medians are reported);
 * - `BENCH_SUITES=client-roundtrip` runs only the named suites;
 * - `BENCH_ONLY=tessera` runs only the named contenders (e.g. to profile one with `--cpu-prof`);
 * - `BENCH_STRICT=1` exits with 1 when a target is not met.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { integerFromEnv, namesFromEnv } from './env.js';
import type { BenchConfig, Suite, SuiteContext, TargetCheck } from './suite.js';
import { cliStartupSuite } from './suites/cli-startup.js';
import { clientRoundtripSuite } from './suites/client-roundtrip.js';
import { fileStoreSuite } from './suites/file-store.js';
import { redisDurabilitySuite } from './suites/redis-durability.js';
import { redisStoreSuite } from './suites/redis-store.js';
import { tokenManagerSuite } from './suites/token-manager.js';
import { verifierSuite } from './suites/verifier.js';
import { startStaticTokenServer } from './static-token-server.js';
import type { StaticTokenServer } from './static-token-server.js';
import { formatRatio } from './table.js';

/** Every suite, in the order they run. Add new suites here. */
export const SUITES: readonly Suite[] = [
  clientRoundtripSuite,
  tokenManagerSuite,
  redisStoreSuite,
  redisDurabilitySuite,
  fileStoreSuite,
  verifierSuite,
  cliStartupSuite,
];

/** The run's settings from `BENCH_*` environment variables. */
export function readConfig(): BenchConfig {
  return {
    operations: Math.max(1, integerFromEnv('BENCH_OPS', 20_000)),
    warmup: integerFromEnv('BENCH_WARMUP', 2_000),
    concurrency: Math.max(1, integerFromEnv('BENCH_CONCURRENCY', 16)),
    rounds: Math.max(1, integerFromEnv('BENCH_ROUNDS', 5)),
    only: namesFromEnv('BENCH_ONLY'),
  };
}

function packageVersion(relativePath: string): string {
  try {
    const json: unknown = JSON.parse(readFileSync(new URL(relativePath, import.meta.url), 'utf8'));
    const version = (json as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function describeMachine(config: BenchConfig): string {
  const cpus = os.cpus();
  const versions = [
    `undici ${packageVersion('../node_modules/undici/package.json')}`,
    `openid-client ${packageVersion('../node_modules/openid-client/package.json')}`,
    `axios ${packageVersion('../../core/node_modules/axios/package.json')}`,
  ].join(', ');
  return [
    `node ${process.version} on ${process.platform}/${process.arch}`,
    `cpu: ${cpus[0]?.model.trim() ?? 'unknown'} (${os.availableParallelism()} available, ${cpus.length} logical)`,
    `libraries: ${versions}`,
    `load: ${config.operations} ops per round, concurrency ${config.concurrency}, warm-up ${config.warmup} ops, ` +
      `${config.rounds} rounds (median)${config.only === undefined ? '' : `, only ${[...config.only].join(',')}`}`,
  ].join('\n');
}

function describeTarget(target: TargetCheck): string {
  const measured =
    target.measured === undefined ? 'not measured' : (target.shown ?? formatRatio(target.measured));
  const verdict = target.met === undefined ? 'n/a' : target.met ? 'MET' : 'NOT MET';
  return `- ${target.description}: ${measured} → ${verdict}`;
}

async function main(): Promise<void> {
  const config = readConfig();
  const selected = namesFromEnv('BENCH_SUITES');
  const suites = SUITES.filter((suite) => selected?.has(suite.name) ?? true);
  console.log(describeMachine(config));

  let server: Promise<StaticTokenServer> | undefined;
  const context: SuiteContext = { config, tokenServer: () => (server ??= startStaticTokenServer()) };
  const targets: TargetCheck[] = [];
  try {
    for (const suite of suites) {
      console.log(`\n## ${suite.title}\n`);
      const report = await suite.run(context);
      console.log(report.table);
      targets.push(...report.targets);
    }
  } finally {
    if (server !== undefined) await (await server).close();
  }
  if (targets.length > 0) {
    console.log('\nTargets (DESIGN.md, "What it must reach"):');
    for (const target of targets) console.log(describeTarget(target));
  }
  if (process.env.BENCH_STRICT === '1' && targets.some((t) => t.met === false)) process.exitCode = 1;
}

await main();
