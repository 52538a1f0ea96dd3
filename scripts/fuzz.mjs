/**
 * `pnpm fuzz [--seed N] [--runs N] [--survey FILE] [jest options]`: runs only the fuzz tests
 * (packages/core/test/fuzz) with the same node + jest command as the root `test` script, with
 * FUZZ_SEED and FUZZ_RUNS set. Without `--seed` a random seed is chosen and printed, so a failing
 * run can be replayed; `--runs` defaults to 2000 cases per property. With `--survey FILE`, every
 * failing case is appended to FILE (one JSON line each) instead of stopping at the first failure.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const FUZZ_TESTS = 'packages/core/test/fuzz';
const DEFAULT_RUNS = 2000;

function fail(message) {
  process.stderr.write(
    `fuzz: ${message}\nusage: pnpm fuzz [--seed N] [--runs N] [--survey FILE] [jest options]\n`,
  );
  process.exit(2);
}

function integer(name, value) {
  if (value === undefined || !/^\d+$/.test(value))
    fail(`${name} needs a non-negative integer (got ${value ?? 'nothing'})`);
  return value;
}

const options = { seed: undefined, runs: undefined, survey: undefined };
const passThrough = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  const [flag, inline] =
    arg.startsWith('--') && arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, undefined];
  const value = () => inline ?? args[++i];
  if (arg === '--')
    continue; // `pnpm fuzz -- --seed 1` passes the separator on
  else if (flag === '--seed') options.seed = integer('--seed', value());
  else if (flag === '--runs') options.runs = integer('--runs', value());
  else if (flag === '--survey') options.survey = resolve(value() ?? fail('--survey needs a file'));
  else passThrough.push(arg);
}

const seed = options.seed ?? String(Math.floor(Math.random() * 2 ** 31));
const runs = options.runs ?? String(DEFAULT_RUNS);
process.stdout.write(
  `fuzz: seed ${seed}${options.seed === undefined ? ' (random)' : ''}, ${runs} runs per property` +
    `${options.survey === undefined ? '' : `, failures logged to ${options.survey}`}; replay with: pnpm fuzz --seed ${seed} --runs ${runs}\n`,
);

// The root `test` script is `node <node options> node_modules/jest/bin/jest.js`: run exactly that.
const testScript = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts?.test ?? '';
const [command, ...testArgs] = testScript.trim().split(/\s+/);
if (command !== 'node') fail(`the root test script is not a node command: ${testScript}`);

const child = spawn(process.execPath, [...testArgs, FUZZ_TESTS, ...passThrough], {
  cwd: root,
  stdio: 'inherit',
  env: {
    ...process.env,
    FUZZ_SEED: seed,
    FUZZ_RUNS: runs,
    ...(options.survey === undefined ? {} : { FUZZ_SURVEY: options.survey }),
  },
});
child.on('exit', (code, signal) => {
  if (signal !== null) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
