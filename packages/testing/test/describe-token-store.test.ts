/**
 * describeTokenStore() run against users' adapters: the README's minimal adapter (no lock, no
 * change feed) and one whose change feed reaches a second handle on the same backend (the `peer`).
 */
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { TokenStoreError } from '@tessera/core';
import type { TokenSet, TokenStore, TokenStoreOperation } from '@tessera/core';
import { describeTokenStore } from '@tessera/testing';
import { VersionedMapTokenStore } from './fixtures/runners/versioned-map-store.js';

/** A user's adapter: JSON strings in a Map that stands in for a key-value service. */
class JsonMapTokenStore implements TokenStore {
  #broken = false;

  constructor(readonly backend = new Map<string, string>()) {}

  async get(key: string): Promise<TokenSet | undefined> {
    this.#check('get');
    const json = this.backend.get(key);
    return json === undefined ? undefined : (JSON.parse(json) as TokenSet);
  }

  async set(key: string, tokens: TokenSet): Promise<void> {
    this.#check('set');
    this.backend.set(key, JSON.stringify(tokens));
  }

  async delete(key: string): Promise<void> {
    this.#check('delete');
    this.backend.delete(key);
  }

  /** Simulates the service going away. */
  break(): void {
    this.#broken = true;
  }

  #check(operation: TokenStoreOperation): void {
    if (this.#broken) throw new TokenStoreError(operation, 'key-value service unavailable');
  }
}

describeTokenStore('JsonMapTokenStore (README example)', () => new JsonMapTokenStore(), {
  breakStore: (store) => store.break(),
});

/** Storage and a change feed shared by several handles, as a server would be. */
interface SharedBackend {
  readonly data: Map<string, string>;
  readonly feed: EventEmitter;
}

/** One handle (one "process") on a {@link SharedBackend}; changes reach every handle's listeners. */
class FeedTokenStore extends JsonMapTokenStore {
  readonly shared: SharedBackend;
  closed = false;

  constructor(shared: SharedBackend) {
    super(shared.data);
    this.shared = shared;
  }

  override async set(key: string, tokens: TokenSet): Promise<void> {
    await super.set(key, tokens);
    setImmediate(() => this.shared.feed.emit('change', key));
  }

  override async delete(key: string): Promise<void> {
    await super.delete(key);
    setImmediate(() => this.shared.feed.emit('change', key));
  }

  subscribe(listener: (key: string) => void): () => void {
    this.shared.feed.on('change', listener);
    return () => this.shared.feed.off('change', listener);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const handles: FeedTokenStore[] = [];
describeTokenStore(
  'FeedTokenStore (a peer handle on the same backend)',
  () => {
    const store = new FeedTokenStore({ data: new Map(), feed: new EventEmitter() });
    handles.push(store);
    return store;
  },
  {
    peer: (store) => {
      const peer = new FeedTokenStore(store.shared);
      handles.push(peer);
      return peer;
    },
    capabilities: ['subscribe'],
    teardown: (store) => store.close(),
  },
);

describe('describeTokenStore', () => {
  it('tore down every store and peer of the suite above', () => {
    expect(handles.length).toBeGreaterThan(0);
    expect(handles.filter((handle) => !handle.closed)).toEqual([]);
    expect(new Set(handles.map((handle) => handle.shared)).size * 2).toBe(handles.length);
  });

  it.each([
    { ttlMs: 0, waitMs: 100 },
    { ttlMs: 100, waitMs: 100 },
    { ttlMs: 200, waitMs: 100 },
    { ttlMs: Number.NaN, waitMs: 100 },
  ])('refuses lockTimings %p with a RangeError', (lockTimings) => {
    expect(() =>
      describeTokenStore('never registered', () => new JsonMapTokenStore(), { lockTimings }),
    ).toThrow(RangeError);
  });
});

describeTokenStore('VersionedMapTokenStore under jest', () => new VersionedMapTokenStore(), {
  capabilities: ['versioned'],
  breakStore: (store) => store.break(),
});

const REPOSITORY = fileURLToPath(new URL('../../..', import.meta.url));
const RUNNERS = fileURLToPath(new URL('./fixtures/runners/', import.meta.url));

/** Runs a command to its end: exit code and output. */
function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, NODE_OPTIONS: '' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** node:test's TAP summary: `# pass 21`, `# skipped 11`... */
function tapSummary(output: string): Record<string, number> {
  return Object.fromEntries(
    [...output.matchAll(/^# (\w+) (\d+)$/gm)].map(([, name, count]) => [name, Number(count)]),
  );
}

/** Runs a fixture under node:test, with the workspace packages resolved to their sources. */
function nodeTest(fixture: string): Promise<{ code: number | null; output: string }> {
  return run(
    process.execPath,
    [
      '--conditions=tessera-source',
      '--import',
      'tsx',
      '--test',
      '--test-reporter=tap',
      join(RUNNERS, fixture),
    ],
    REPOSITORY,
  );
}

describe('describeTokenStore under other runners', () => {
  // 32 checks: 11 get/set/delete, 6 lock, 4 subscribe, 5 compare-and-set, 5 failures, and the
  // capability declaration. The store declares 'versioned' only: lock and subscribe are skipped.
  const expected = { tests: 32, pass: 21, skipped: 11, fail: 0 };

  it('runs under node:test, showing what the store lacks as skipped', async () => {
    const { code, output } = await nodeTest('node-test.conformance.ts');
    expect(tapSummary(output)).toMatchObject(expected);
    expect(code).toBe(0);
  });

  it('runs under vitest, showing what the store lacks as skipped', async () => {
    const report = join(tmpdir(), `tessera-vitest-${process.pid}-${Date.now()}.json`);
    try {
      const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
      const { code, output } = await run(
        process.execPath,
        [vitest, 'run', '--config', 'vitest.config.ts', '--reporter=json', `--outputFile=${report}`],
        RUNNERS,
      );
      expect({ code, output: code === 0 ? '' : output }).toEqual({ code: 0, output: '' });
      const summary = JSON.parse(await readFile(report, 'utf8')) as Record<string, number>;
      expect(summary).toMatchObject({
        numTotalTests: expected.tests,
        numPassedTests: expected.pass,
        numPendingTests: expected.skipped,
        numFailedTests: 0,
      });
    } finally {
      await rm(report, { force: true });
    }
  });

  it('fails a store that has a method of a capability it did not declare', async () => {
    const { code, output } = await nodeTest('undeclared.conformance.ts');
    expect(tapSummary(output)).toMatchObject({ fail: 1 });
    expect(output).toContain("the store has lock() but capabilities do not include 'lock'");
    expect(code).not.toBe(0);
  });

  it('refuses an unknown capability with a RangeError', () => {
    expect(() =>
      describeTokenStore('never registered', () => new JsonMapTokenStore(), {
        capabilities: ['locking' as 'lock'],
      }),
    ).toThrow(/unknown capability "locking"/);
  });
});
