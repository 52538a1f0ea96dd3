#!/usr/bin/env node
/**
 * `changeset <command>` (`pnpm version-packages`, `pnpm release-plan`) for a fixed group of 0.x
 * packages that peer-depend on each other.
 *
 * Changesets bumps a package to a major when a peer dependency's next version leaves its range, and
 * in 0.x every minor leaves `^0.y.z`: a minor of @tessera/core would make its adapters 1.0.0. Our
 * peer ranges are `workspace:^`, which pnpm turns into `^<version being published>` when it packs,
 * so they never need changesets to rewrite them. This script takes the workspace peers out of each
 * package.json while changesets runs and puts them back unchanged afterwards, so the fixed
 * group moves together by the bump its changesets ask for.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const manifests = readdirSync(join(root, 'packages')).map((dir) =>
  join(root, 'packages', dir, 'package.json'),
);
const originals = new Map(manifests.map((file) => [file, readFileSync(file, 'utf8')]));

for (const [file, text] of originals) {
  const manifest = JSON.parse(text);
  const peers = Object.entries(manifest.peerDependencies ?? {});
  if (!peers.some(([, range]) => String(range).startsWith('workspace:'))) continue;
  manifest.peerDependencies = Object.fromEntries(
    peers.filter(([, range]) => !String(range).startsWith('workspace:')),
  );
  writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
}

let status = 1;
try {
  status =
    spawnSync('changeset', process.argv.slice(2), { cwd: root, stdio: 'inherit', shell: false }).status ?? 1;
} finally {
  for (const [file, text] of originals) {
    const before = JSON.parse(text);
    const after = JSON.parse(readFileSync(file, 'utf8'));
    if (before.peerDependencies !== undefined) after.peerDependencies = before.peerDependencies;
    writeFileSync(file, `${JSON.stringify(after, null, 2)}\n`);
  }
}
process.exit(status);
