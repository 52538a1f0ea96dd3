#!/usr/bin/env node
/**
 * `pnpm test:package`: what a user gets from the registry, checked before it gets there.
 *
 * 1. Builds and packs every public package (`pnpm pack`: `workspace:` ranges resolved,
 *    `publishConfig` applied) and checks each tarball: README, LICENSE and metadata present, no
 *    `.tsbuildinfo`, every source map's sources shipped, no `tessera-source` export condition, peer
 *    ranges resolved.
 * 2. Installs the tarballs with npm into a fresh project outside the workspace, with the newest
 *    ioredis, then typechecks a small consumer under `nodenext` and `bundler` and runs it, as ESM
 *    and through `require()`; runs the installed `tessera --help`; then typechecks the consumer again
 *    with the oldest ioredis the peer range allows.
 *
 * Needs the npm registry (the packages' own dependencies are installed from it). Exits non-zero
 * naming every problem found.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const consumerFiles = fileURLToPath(new URL('./package-test/', import.meta.url));
const PACKAGES = ['core', 'store-redis', 'store-file', 'opentelemetry', 'testing', 'cli'];
const REQUIRED_FIELDS = [
  'description',
  'license',
  'homepage',
  'repository',
  'bugs',
  'keywords',
  'sideEffects',
  'engines',
];
const problems = [];
const problem = (text) => problems.push(text);
const run = (command, args, options = {}) =>
  execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
const step = (text) => console.log(`package-test: ${text}`);

const work = mkdtempSync(join(tmpdir(), 'tessera-package-test-'));
try {
  step('building');
  run('pnpm', ['build'], { cwd: root });

  const tarballs = [];
  for (const name of PACKAGES) {
    const dir = join(root, 'packages', name);
    const output = run('pnpm', ['pack', '--pack-destination', work], { cwd: dir }).trim().split('\n');
    const tarball = output.findLast((line) => line.endsWith('.tgz'));
    if (tarball === undefined) throw new Error(`pnpm pack printed no tarball for ${name}`);
    tarballs.push(tarball.startsWith('/') ? tarball : join(work, tarball));
  }

  for (const tarball of tarballs) checkTarball(tarball);

  step('installing the tarballs and the newest ioredis into a fresh project');
  const project = join(work, 'consumer');
  cpSync(consumerFiles, project, { recursive: true });
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'tessera-consumer', private: true, type: 'module' }, null, 2)}\n`,
  );
  const typescript = JSON.parse(
    readFileSync(join(root, 'node_modules/typescript/package.json'), 'utf8'),
  ).version;
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      ...tarballs,
      'ioredis@latest',
      `typescript@${typescript}`,
      '@types/node@20',
    ],
    { cwd: project },
  );
  const ioredis = JSON.parse(
    readFileSync(join(project, 'node_modules/ioredis/package.json'), 'utf8'),
  ).version;
  step(`installed ioredis ${ioredis}`);

  const tsc = join(project, 'node_modules/typescript/bin/tsc');
  for (const config of ['tsconfig.nodenext.json', 'tsconfig.bundler.json']) {
    step(`typechecking the consumer (${config})`);
    try {
      run(process.execPath, [tsc, '-p', config], { cwd: project });
    } catch (error) {
      problem(`the consumer does not typecheck with ${config}:\n${error.stdout}${error.stderr}`);
    }
  }
  if (problems.length === 0) {
    for (const [label, args] of [
      ['ESM', ['out/consumer.js']],
      ['require()', ['consumer.cjs']],
    ]) {
      step(`running the consumer (${label})`);
      try {
        const printed = run(process.execPath, args, { cwd: project, timeout: 60_000 });
        process.stdout.write(`${printed.trimEnd().replace(/^/gm, '  ')}\n`);
      } catch (error) {
        problem(`the consumer failed (${label}):\n${error.stdout}${error.stderr}`);
      }
    }
  }
  if (problems.length === 0) {
    step('running the installed `tessera --help`');
    try {
      const help = run(join(project, 'node_modules/.bin/tessera'), ['--help'], {
        cwd: project,
        timeout: 60_000,
      });
      if (!help.startsWith('Usage: tessera')) problem(`tessera --help printed:\n${help}`);
    } catch (error) {
      problem(`the installed tessera command failed:\n${error.stdout}${error.stderr}`);
    }
  }
  if (problems.length === 0) {
    // The oldest ioredis of the peer range: the consumer's types must fit it too.
    const oldest = JSON.parse(readFileSync(join(root, 'packages/store-redis/package.json'), 'utf8'))
      .peerDependencies.ioredis.split('||')[0]
      .trim()
      .replace(/^\^/, '');
    step(`typechecking the consumer with ioredis ${oldest}, the oldest the peer range allows`);
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `ioredis@${oldest}`], {
      cwd: project,
    });
    try {
      run(process.execPath, [tsc, '-p', 'tsconfig.nodenext.json', '--noEmit'], { cwd: project });
    } catch (error) {
      problem(`the consumer does not typecheck with ioredis ${oldest}:\n${error.stdout}${error.stderr}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (problems.length > 0) {
  console.error(`package-test: ${problems.length} problem(s):\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
step('every package installs, typechecks and runs outside the workspace');

/** The checks one tarball must pass, on its file list and its package.json. */
function checkTarball(tarball) {
  const files = run('tar', ['-tzf', tarball])
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ''));
  const manifest = JSON.parse(run('tar', ['-xzOf', tarball, 'package/package.json']));
  const label = manifest.name;
  step(`${label}: ${files.length} files`);
  // A library ships its entry point and types; a command (`bin`) ships its executables.
  const entries =
    manifest.bin === undefined ? ['dist/index.js', 'dist/index.d.ts'] : Object.values(manifest.bin);
  for (const required of [
    'README.md',
    'LICENSE',
    'package.json',
    ...entries.map((path) => posix.normalize(path)),
  ]) {
    if (!files.includes(required)) problem(`${label}: the tarball has no ${required}`);
  }
  for (const field of REQUIRED_FIELDS) {
    if (manifest[field] === undefined) problem(`${label}: package.json has no "${field}"`);
  }
  if (manifest.publishConfig?.access !== 'public') problem(`${label}: publishConfig.access is not "public"`);
  const leaked = files.filter((path) => path.endsWith('.tsbuildinfo'));
  if (leaked.length > 0) problem(`${label}: ships ${leaked.join(', ')}`);
  if (JSON.stringify(manifest.exports ?? {}).includes('tessera-source')) {
    problem(`${label}: the published exports keep the tessera-source condition`);
  }
  for (const [kind, ranges] of Object.entries({
    dependencies: manifest.dependencies,
    peerDependencies: manifest.peerDependencies,
  })) {
    for (const [dependency, range] of Object.entries(ranges ?? {})) {
      if (String(range).startsWith('workspace:'))
        problem(`${label}: ${kind}.${dependency} is still ${range}`);
    }
  }
  // A source map is shipped only with the sources it points to.
  const listed = new Set(files);
  for (const map of files.filter((path) => path.endsWith('.map'))) {
    const { sources = [] } = JSON.parse(run('tar', ['-xzOf', tarball, `package/${map}`]));
    for (const source of sources) {
      const shipped = posix.normalize(posix.join(posix.dirname(map), source));
      if (!listed.has(shipped)) problem(`${label}: ${map} points to ${shipped}, which is not in the tarball`);
    }
  }
}
