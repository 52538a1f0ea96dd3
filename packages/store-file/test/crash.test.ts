/**
 * Crash safety with real processes: a writer SIGKILLed at random moments, 100 times, never leaves a
 * torn token set, and the temp files it leaves behind are removed when a store opens.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { FileTokenStore } from '@tessera/store-file';

const root = mkdtempSync(join(tmpdir(), 'tessera-file-crash-'));
const children = new Set<ChildProcess>();
/** The writer, bundled into one file: a plain `node` starts it in a fraction of tsx's time. */
const writerPath = join(root, 'crash-writer.mjs');
beforeAll(async () => {
  await build({
    entryPoints: [fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['tessera-source'],
    outfile: writerPath,
    logLevel: 'error',
    // Bundled CommonJS dependencies call require().
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
}, 60_000);
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

/** Starts a writer, waits until it has written once, lets it write for `ms`, then SIGKILLs it. */
async function writeThenKill(
  directory: string,
  encryptionKey: string,
  start: number,
  ms: number,
): Promise<void> {
  const child = fork(writerPath, [directory, encryptionKey, 'user:alice@example.com', String(start)], {
    execArgv: [],
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before writing`)));
  });
  await new Promise((resolve) => setTimeout(resolve, ms));
  child.kill('SIGKILL');
  await exited;
  children.delete(child);
}

describe('a writer SIGKILLed at random moments', () => {
  it('leaves a whole token set every time (100 kills), and its temp files are cleaned up', async () => {
    const encryptionKey = randomBytes(32).toString('base64url');
    // Four directories in parallel, 25 kills each: 100 kills in all.
    const lanes = Array.from({ length: 4 }, (_, lane) => join(root, `lane-${lane}`));
    const torn: string[] = [];
    await Promise.all(
      lanes.map(async (directory, lane) => {
        for (let kill = 0; kill < 25; kill++) {
          await writeThenKill(
            directory,
            encryptionKey,
            (lane * 25 + kill) * 100_000,
            Math.floor(Math.random() * 40),
          );
          const reader = new FileTokenStore({ directory, encryptionKey });
          const tokens = await reader.get('user:alice@example.com');
          const n = Number(tokens?.accessToken.slice('access-'.length));
          const whole =
            tokens !== undefined &&
            Number.isInteger(n) &&
            tokens.refreshToken === `refresh-${n}` &&
            tokens.expiresAt === 1_900_000_000 + n &&
            tokens.extra?.number === n &&
            (tokens.extra?.padding as string).length === 4096;
          if (!whole) torn.push(`${directory} after kill ${kill}: ${JSON.stringify(tokens)?.slice(0, 200)}`);
          // Opening the store removed what the killed writer left behind.
          expect(readdirSync(directory).filter((file) => file.endsWith('.tmp'))).toEqual([]);
          await reader.close();
        }
      }),
    );
    expect(torn).toEqual([]);
  }, 180_000);
});
