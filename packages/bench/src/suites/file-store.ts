/**
 * The file token store: what an encrypted, fsync'd `FileTokenStore.set` costs against a raw
 * crash-safe write of the same bytes with `fs.promises` (temp file, write, `sync()`, close,
 * `rename` over the target, in the same directory), measured in the same run; a cached
 * `getValidAccessToken()` through the TokenManager's near-cache (fed by the store's `subscribe()`)
 * against the memory store; and the fleet figure: refresh requests per expiry for 8 processes
 * sharing one directory.
 *
 * Targets (DESIGN.md, "What it must reach"): `set` at least 0.7x the raw write's ops/s; a cached
 * lookup through the near-cache at most 2x the memory store's; 8 processes sharing one directory,
 * one expired key: exactly 1 refresh per expiry.
 *
 * Environment: `BENCH_FILE_WRITES` writes per timed run, one after another (default 1,000),
 * `BENCH_FILE_LOOKUPS` awaited calls per timed run through the near-cache and the memory store
 * (default 1,000,000), `BENCH_FILE_READS` per timed run without the near-cache (default 20,000),
 * `BENCH_FILE_CALLERS` concurrent callers per process of the fleet (default 500); `BENCH_ROUNDS`
 * as for every suite (the fleet runs one expiry per round). `BENCH_ONLY=write,cached,fleet` runs
 * only the named parts (all of them when `BENCH_ONLY` names none). The directories are fresh ones
 * under `os.tmpdir()`, removed afterwards.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Client, MemoryTokenStore, TokenManager } from '@tessera/core';
import type { TokenSet, TokenStore } from '@tessera/core';
import { FileTokenStore } from '@tessera/store-file';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { integerFromEnv } from '../env.js';
import type { FleetParentMessage, FleetWorkerConfig, FleetWorkerMessage } from '../file-store-worker-main.js';
import { measureCachedLookups, measureContenders, median, withoutChangeFeed } from '../measure.js';
import type { CachedLookupFigures, Contender, ContenderResult } from '../measure.js';
import type { Suite, SuiteContext, SuiteReport, TargetCheck } from '../suite.js';
import { formatBytes, formatCount, formatMs, formatRatio, formatTable } from '../table.js';

/** `FileTokenStore.set` must reach at least this fraction of the raw write's ops/s. */
const WRITE_TARGET_RATIO = 0.7;
/** Through the near-cache, a cached lookup may cost at most this many times the memory store's. */
const NEAR_CACHE_TARGET_RATIO = 2;
const FLEET_PROCESSES = 8;
/** How long one expiry of the fleet may take before the suite gives up. */
const FLEET_ROUND_TIMEOUT_MS = 120_000;

const RAW = 'raw write';
const TESSERA = 'FileTokenStore.set';
const RAW_DIRECTORY_SYNC = 'raw write + directory fsync';

/** The parts of the suite, for `BENCH_ONLY`. */
export const FILE_STORE_PARTS = ['write', 'cached', 'fleet'] as const;

function newClient(issuer: string): Client {
  return new Client(
    { issuer, token_endpoint: `${issuer}/token` },
    { client_id: 'c1', client_secret: 's1', token_endpoint_auth_method: 'client_secret_basic' },
  );
}

/** A user's token set as a TokenManager stores it (opaque tokens as oidc-provider issues them). */
function userTokenSet(): TokenSet {
  return {
    accessToken: randomBytes(32).toString('base64url'),
    tokenType: 'Bearer',
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    refreshToken: randomBytes(32).toString('base64url'),
    scope: 'openid offline_access api:read',
    issuer: 'http://127.0.0.1:50000',
    clientId: 'c1',
  };
}

/** The median over rounds of `result`'s ops/s in a round ÷ `baseline`'s in the same round. */
function ratioOfRounds(result: ContenderResult, baseline: ContenderResult): number {
  return median(result.rounds.map((ops, round) => ops / baseline.rounds[round]!));
}

// --- 1. FileTokenStore.set against a raw crash-safe write ------------------------------------------

interface WriteFigures {
  results: ContenderResult[];
  /** Bytes of one sealed token set, as the store wrote it. */
  bytes: number;
  writes: number;
}

async function measureWrites(root: string, writes: number, rounds: number): Promise<WriteFigures> {
  const directory = join(root, 'write');
  const store = new FileTokenStore({ directory, encryptionKey: randomBytes(32) });
  try {
    const tokens = userTokenSet();
    await store.set('user:alice', tokens);
    const [file] = (await readdir(directory)).filter((name) => name.endsWith('.token'));
    if (file === undefined) throw new Error('FileTokenStore.set wrote no .token file');
    const sealed = await readFile(join(directory, file));

    // The raw baseline writes the same bytes, crash-safe as far as the file goes, beside the store's files.
    const target = join(directory, 'raw-target');
    const temp = join(directory, '.raw-target.tmp');
    const rawWrite = async (): Promise<void> => {
      const handle = await open(temp, 'w', 0o600);
      try {
        await handle.write(sealed);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
    };
    const syncDirectory = async (): Promise<void> => {
      const handle = await open(directory, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    };
    const contenders: Contender[] = [
      { name: RAW, operation: rawWrite },
      { name: TESSERA, operation: () => store.set('user:alice', tokens) },
      {
        name: RAW_DIRECTORY_SYNC,
        operation: async () => {
          await rawWrite();
          await syncDirectory();
        },
      },
    ];
    const results = await measureContenders(contenders, {
      operations: writes,
      warmup: Math.min(200, writes),
      concurrency: 1,
      rounds,
    });
    return { results, bytes: sealed.length, writes };
  } finally {
    await store.close();
  }
}

function writeTable(figures: WriteFigures): { table: string; ratio: number } {
  const raw = figures.results.find((r) => r.name === RAW)!;
  const ratio = ratioOfRounds(
    figures.results.find((r) => r.name === TESSERA)!,
    raw,
  );
  const table = formatTable(
    [
      { heading: 'write (one after another)' },
      { heading: 'ops/s (median)', align: 'right' },
      { heading: 'rounds (ops/s)', align: 'right' },
      { heading: 'vs raw write (median of rounds)', align: 'right' },
      { heading: 'CPU µs/op', align: 'right' },
    ],
    figures.results.map((result) => [
      result.name,
      formatCount(result.opsPerSecond),
      result.rounds.map(formatCount).join(' / '),
      result === raw ? '1.00x' : formatRatio(ratioOfRounds(result, raw)),
      formatCount(result.cpuMicrosPerOp),
    ]),
  );
  return { table, ratio };
}

// --- 2. cached lookups through the near-cache --------------------------------------------------------

async function measureCached(
  root: string,
  issuer: string,
  rounds: number,
  lookups: number,
  reads: number,
): Promise<CachedLookupFigures> {
  const encryptionKey = randomBytes(32);
  const stores = [
    new FileTokenStore({ directory: join(root, 'cached'), encryptionKey }),
    new FileTokenStore({ directory: join(root, 'cached'), encryptionKey }),
  ];
  const manager = (store: TokenStore) =>
    new TokenManager({ client: newClient(issuer), grant: 'client_credentials', store, key: 'cached' });
  const memory = manager(new MemoryTokenStore());
  const near = manager(stores[0]!);
  const far = manager(withoutChangeFeed(stores[1]!));
  try {
    return await measureCachedLookups({ memory, near, far }, { rounds, lookups, farCalls: reads });
  } finally {
    await Promise.all([memory, near, far].map((m) => m.close()));
    await Promise.all(stores.map((s) => s.close()));
  }
}

function cachedTable(figures: CachedLookupFigures): string {
  const ns = (values: readonly number[]) => `${median(values).toFixed(0)} ns`;
  return formatTable(
    [
      { heading: 'what' },
      { heading: 'figure (median)', align: 'right' },
      { heading: 'rounds (ns)', align: 'right' },
      { heading: 'vs memory store', align: 'right' },
    ],
    [
      [
        'cached getValidAccessToken(), MemoryTokenStore',
        ns(figures.memory),
        figures.memory.map((v) => v.toFixed(0)).join(' / '),
        '1.00x',
      ],
      [
        'cached getValidAccessToken(), FileTokenStore + near-cache',
        ns(figures.near),
        figures.near.map((v) => v.toFixed(0)).join(' / '),
        formatRatio(median(figures.ratio)),
      ],
      [
        'getValidAccessToken(), FileTokenStore without near-cache (read + decrypt)',
        ns(figures.far),
        figures.far.map((v) => v.toFixed(0)).join(' / '),
        formatRatio(median(figures.far) / median(figures.memory)),
      ],
    ],
  );
}

// --- 3. the fleet: processes sharing one directory ---------------------------------------------------

interface FleetRound {
  /** Token endpoint requests the authorization server received during the round. */
  requests: number;
  /** `token.refreshed` events, over all processes. */
  refreshed: number;
  /** Distinct tokens handed out, over all processes. */
  distinct: number;
  rejected: string[];
  /** Other renewal events (`refresh.failed`, `store.failed`, `token.cleared`), by name. */
  failures: Record<string, number>;
  ms: number;
}

interface FleetProcess {
  child: ChildProcess;
  ready: Promise<void>;
  /** The next `done` message. */
  next(): Promise<Extract<FleetWorkerMessage, { type: 'done' }>>;
}

function startFleetProcess(config: FleetWorkerConfig): FleetProcess {
  const entry = fileURLToPath(new URL('../file-store-worker-main.js', import.meta.url));
  // The child does not inherit the parent's --cpu-prof / --expose-gc flags.
  const child = fork(entry, [JSON.stringify(config)], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const done: Array<Extract<FleetWorkerMessage, { type: 'done' }>> = [];
  let wake: (() => void) | undefined;
  let failed: Error | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    child.on('message', (message: FleetWorkerMessage) => {
      if (message.type === 'ready') resolve();
      else {
        done.push(message);
        wake?.();
      }
    });
    child.once('exit', (code, signal) => {
      failed = new Error(`a fleet process exited (code ${String(code)}, signal ${String(signal)})`);
      reject(failed);
      wake?.();
    });
  });
  ready.catch(() => undefined);
  const next = async (): Promise<Extract<FleetWorkerMessage, { type: 'done' }>> => {
    const deadline = Date.now() + FLEET_ROUND_TIMEOUT_MS;
    for (;;) {
      const message = done.shift();
      if (message !== undefined) return message;
      if (failed !== undefined) throw failed;
      if (Date.now() > deadline) throw new Error('a fleet process did not answer within the round timeout');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  };
  return { child, ready, next };
}

function stopFleetProcess(fleet: FleetProcess): Promise<void> {
  const { child } = fleet;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    const stop: FleetParentMessage = { type: 'stop' };
    if (child.connected) child.send(stop);
    else child.kill('SIGTERM');
  });
}

/** Stores a real, rotating user token set whose access token has already expired. */
async function seedExpiredTokens(server: TestServer, store: FileTokenStore, key: string): Promise<void> {
  const client = await Client.discover(server.issuer, server.clients.basic);
  const manager = new TokenManager({ client, store, key });
  try {
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access api:read' });
    await manager.storeTokens({ ...issued, expires_in: 0 } as never);
  } finally {
    await manager.close();
  }
}

async function measureFleet(root: string, rounds: number, callers: number): Promise<FleetRound[]> {
  const server = await startTestServer({ rotateRefreshTokens: true });
  const directory = join(root, 'fleet');
  const encryptionKey = randomBytes(32).toString('base64url');
  const seedStore = new FileTokenStore({ directory, encryptionKey });
  const fleet: FleetProcess[] = [];
  try {
    const config: FleetWorkerConfig = {
      issuer: server.issuer,
      client: server.clients.basic,
      directory,
      encryptionKey,
    };
    for (let i = 0; i < FLEET_PROCESSES; i++) fleet.push(startFleetProcess(config));
    await Promise.all(fleet.map((p) => p.ready));
    const figures: FleetRound[] = [];
    for (let round = 0; round < rounds; round++) {
      const key = `user:fleet-${round}`;
      await seedExpiredTokens(server, seedStore, key);
      server.resetStats();
      const go: FleetParentMessage = { type: 'go', key, calls: callers };
      const start = performance.now();
      for (const p of fleet) p.child.send(go);
      const results = await Promise.all(fleet.map((p) => p.next()));
      const ms = performance.now() - start;
      const failures: Record<string, number> = {};
      for (const result of results) {
        for (const [name, count] of Object.entries(result.events)) {
          if (name !== 'token.refreshed') failures[name] = (failures[name] ?? 0) + count;
        }
      }
      figures.push({
        requests: server.stats().token,
        refreshed: results.reduce((sum, r) => sum + (r.events['token.refreshed'] ?? 0), 0),
        distinct: new Set(results.flatMap((r) => r.fingerprints)).size,
        rejected: results.flatMap((r) => r.rejected),
        failures,
        ms,
      });
    }
    return figures;
  } finally {
    await Promise.all(fleet.map(stopFleetProcess));
    await seedStore.close();
    await server.close();
  }
}

function fleetTable(figures: readonly FleetRound[], callers: number): string {
  const per = (f: (round: FleetRound) => string) => figures.map(f).join(' / ');
  const failures = per((r) => {
    const named = Object.entries(r.failures).map(([name, count]) => `${count} ${name}`);
    return [...named, ...(r.rejected.length > 0 ? [`${r.rejected.length} rejected`] : [])].join(', ') || '0';
  });
  return formatTable(
    [
      { heading: `fleet: ${FLEET_PROCESSES} processes × ${formatCount(callers)} callers, one expired key` },
      { heading: 'per round', align: 'right' },
    ],
    [
      ['refresh requests the authorization server received', per((r) => String(r.requests))],
      ['token.refreshed events (all processes)', per((r) => String(r.refreshed))],
      ['distinct tokens handed out', per((r) => String(r.distinct))],
      ['refresh.failed / store.failed / token.cleared / rejected calls', failures],
      [
        `time until all ${formatCount(FLEET_PROCESSES * callers)} callers had a token`,
        per((r) => formatMs(r.ms)),
      ],
    ],
  );
}

// --- the suite -------------------------------------------------------------------------------------

/** The file token store suite (see the module comment). */
export const fileStoreSuite: Suite = {
  name: 'file-store',
  title:
    'File token store: encrypted fsync-ed writes against raw fs writes, cached lookups through the near-cache, a fleet of processes sharing one directory',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const { rounds } = context.config;
    const writes = Math.max(1, integerFromEnv('BENCH_FILE_WRITES', 1_000));
    const lookups = Math.max(1, integerFromEnv('BENCH_FILE_LOOKUPS', 1_000_000));
    const reads = Math.max(1, integerFromEnv('BENCH_FILE_READS', 20_000));
    const callers = Math.max(1, integerFromEnv('BENCH_FILE_CALLERS', 500));
    const named = FILE_STORE_PARTS.filter((part) => context.config.only?.has(part) ?? false);
    const runs = (part: (typeof FILE_STORE_PARTS)[number]): boolean =>
      named.length === 0 || named.includes(part);
    const root = await mkdtemp(join(os.tmpdir(), 'tessera-bench-file-store-'));
    const targets: TargetCheck[] = [];
    const sections: string[] = [`directory: ${root} (fresh, removed afterwards)`];
    try {
      if (runs('write')) {
        const figures = await measureWrites(root, writes, rounds);
        const { table, ratio } = writeTable(figures);
        sections.push(
          `### One token set written, ${formatCount(writes)} writes per round one after another, ${rounds} rounds; ` +
            `${formatBytes(figures.bytes)} per write (one sealed token set)\n\n${table}`,
        );
        targets.push({
          description: `encrypted, fsync'd FileTokenStore.set / raw fs write + fsync + rename (ops/s) >= ${WRITE_TARGET_RATIO}`,
          measured: ratio,
          met: ratio >= WRITE_TARGET_RATIO,
        });
      }
      if (runs('cached')) {
        const server = await context.tokenServer();
        const figures = await measureCached(root, server.issuer, rounds, lookups, reads);
        sections.push(
          `### Cached getValidAccessToken(), ${formatCount(lookups)} awaited calls per round ` +
            `(${formatCount(reads)} without the near-cache), ${rounds} rounds\n\n${cachedTable(figures)}`,
        );
        targets.push({
          description: `cached getValidAccessToken() through the file store's near-cache <= ${NEAR_CACHE_TARGET_RATIO}x the memory store`,
          measured: median(figures.ratio),
          met: median(figures.ratio) <= NEAR_CACHE_TARGET_RATIO,
        });
      }
      if (runs('fleet')) {
        const figures = await measureFleet(root, rounds, callers);
        sections.push(
          `### ${FLEET_PROCESSES} processes sharing one directory, one expired key per round (oidc-provider, rotating refresh tokens), ${rounds} rounds\n\n` +
            fleetTable(figures, callers),
        );
        const clean = figures.every(
          (r) => r.distinct === 1 && r.rejected.length === 0 && Object.keys(r.failures).length === 0,
        );
        targets.push({
          description: `${FLEET_PROCESSES} processes sharing one directory, one expired key: refresh requests per expiry = 1`,
          measured: Math.max(...figures.map((r) => r.requests)),
          shown: `${figures.map((r) => r.requests).join(' / ')} (per round); one token per round: ${clean ? 'yes' : 'NO'}`,
          met: figures.every((r) => r.requests === 1) && clean,
        });
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
    return { table: sections.join('\n\n'), targets };
  },
};
