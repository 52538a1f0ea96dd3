/**
 * The resource server's `TokenVerifier`: what a cached verification costs against the bare
 * "SHA-256 of the token plus a Map lookup" it is built on, what a first-seen RS256 JWT access token
 * costs against jose's `jwtVerify` with the key in hand, how many introspection requests 10,000
 * concurrent verifications of one new opaque token make, and the requests per second of an express
 * app behind `requireToken()` against the same app behind `express-oauth2-jwt-bearer`'s `auth()`.
 * Every comparison is measured in the same run, in interleaved rounds.
 *
 * Targets (DESIGN.md, "What it must reach"): a repeated token (JWT and opaque) verified from the
 * cache at most 2x the baseline, checked on a new verifier and on one whose cache (the default
 * `MemoryVerificationCache`, 10,000 results) is full of other tokens' results; a first-seen JWT at
 * most 1.2x jose `jwtVerify`; 10,000 concurrent verifications of one new opaque token: exactly 1
 * introspection request; the `requireToken()` app at least 1.5x the requests per second of the
 * `express-oauth2-jwt-bearer` app on the same JWT.
 *
 * The issuer is a local `node:http` server in this process (`GET /jwks`: the public key of the
 * bench's RS256 signing key; `POST /introspect`: `{"active":true,"scope":"a","client_id":"c",
 * "sub":"u","exp":<now+300>}`, counted). The express apps run in a child process
 * (`dist/verifier-apps-main.js`), autocannon in this one.
 *
 * Environment: `BENCH_VERIFIER_LOOKUPS` awaited cached calls per timed run (default 200,000; a
 * twentieth of that with the full cache), `BENCH_VERIFIER_JWTS` distinct pre-signed JWTs, one per
 * first-seen call, per timed run (default 2,000), `BENCH_VERIFIER_CALLERS` concurrent verifications
 * of one opaque token (default 10,000), `BENCH_VERIFIER_SECONDS` per autocannon run (default 3),
 * `BENCH_VERIFIER_CONNECTIONS` autocannon connections (default 10); `BENCH_ROUNDS` as for every
 * suite. `BENCH_ONLY=cached,first-seen,concurrent,express` runs only the named parts (all of them
 * when `BENCH_ONLY` names none).
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { hash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { SignJWT, exportJWK, generateKeyPair, importJWK, jwtVerify } from 'jose';
import type { JWK, JWTVerifyOptions } from 'jose';
import { Client, MemoryVerificationCache, TokenVerifier } from '@tessera/core';
import type { CachedVerification, VerifiedToken } from '@tessera/core';
import { integerFromEnv } from '../env.js';
import { collectGarbage, median } from '../measure.js';
import type { Suite, SuiteContext, SuiteReport, TargetCheck } from '../suite.js';
import { formatCount, formatMs, formatRatio, formatTable } from '../table.js';
import type {
  VerifierAppName,
  VerifierAppsConfig,
  VerifierAppsMessage,
  VerifierAppsParentMessage,
} from '../verifier-apps-main.js';

/** A cached verification may cost at most this many times the hash + Map baseline. */
const CACHED_TARGET_RATIO = 2;
/** A first-seen JWT may cost at most this many times jose's `jwtVerify` with the key in hand. */
const FIRST_SEEN_TARGET_RATIO = 1.2;
/** Introspection requests allowed for any number of concurrent verifications of one token. */
const CONCURRENT_TARGET_REQUESTS = 1;
/** The `requireToken()` app must serve at least this many times the other app's requests/s. */
const EXPRESS_TARGET_RATIO = 1.5;

const AUDIENCE = 'https://api.example';
const SUBJECT = 'user-1';
const KID = 'bench-rs256';
/** The one route of every express app. */
const ROUTE = '/orders';
/** What every JWT access token of the bench carries besides iss, sub, aud, exp, iat and jti. */
const EXTRA_CLAIMS = { client_id: 'bench-client', scope: 'orders:read orders:write' };
/** Seconds of load before the first round of each app, not timed. */
const EXPRESS_WARMUP_SECONDS = 2;

/** The parts of the suite, for `BENCH_ONLY`. */
export const VERIFIER_PARTS = ['cached', 'first-seen', 'concurrent', 'express'] as const;

// --- the issuer: a signing key, its JWKS and an introspection endpoint ------------------------------

interface Issuer {
  /** `http://127.0.0.1:<port>`: the issuer identifier (`iss`). */
  readonly url: string;
  readonly jwksUri: string;
  readonly introspectionEndpoint: string;
  readonly tokenEndpoint: string;
  /** The public key, as the issuer's JWKS serves it. */
  readonly jwk: JWK;
  /** Requests answered so far, by endpoint. */
  readonly requests: { jwks: number; introspect: number };
  /** An RFC 9068 access token (`typ: at+jwt`, RS256, `kid`), with `jti` as given. */
  sign(jti: string): Promise<string>;
  close(): Promise<void>;
}

async function startIssuer(): Promise<Issuer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  const jwks = JSON.stringify({ keys: [jwk] });
  const requests = { jwks: 0, introspect: 0 };
  const server = http.createServer((request, response) => {
    request.resume(); // the form body is read, not parsed
    request.once('end', () => {
      let body: string;
      if (request.method === 'GET' && request.url === '/jwks') {
        requests.jwks++;
        body = jwks;
      } else if (request.method === 'POST' && request.url === '/introspect') {
        requests.introspect++;
        const exp = Math.floor(Date.now() / 1000) + 300;
        body = JSON.stringify({ active: true, scope: 'a', client_id: 'c', sub: 'u', exp });
      } else {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      response.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    jwksUri: `${url}/jwks`,
    introspectionEndpoint: `${url}/introspect`,
    tokenEndpoint: `${url}/token`,
    jwk,
    requests,
    sign: (jti) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(EXTRA_CLAIMS)
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: KID })
        .setIssuer(url)
        .setSubject(SUBJECT)
        .setAudience(AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .setJti(jti)
        .sign(privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function newClient(issuer: Issuer): Client {
  return new Client(
    {
      issuer: issuer.url,
      jwks_uri: issuer.jwksUri,
      introspection_endpoint: issuer.introspectionEndpoint,
      token_endpoint: issuer.tokenEndpoint,
    },
    { client_id: 'rs', client_secret: 'rs-secret', token_endpoint_auth_method: 'client_secret_basic' },
  );
}

/** Signs `count` distinct tokens (jti 0..count-1 after a random prefix), a batch at a time. */
async function signPool(issuer: Issuer, count: number): Promise<string[]> {
  const prefix = randomUUID();
  const pool: string[] = [];
  for (let start = 0; start < count; start += 64) {
    const batch = Array.from({ length: Math.min(64, count - start) }, (_, i) =>
      issuer.sign(`${prefix}-${start + i}`),
    );
    pool.push(...(await Promise.all(batch)));
  }
  return pool;
}

/** Fails unless `result` is the bench's token for `subject`. */
function checkResult(result: VerifiedToken, subject: string, what: string): void {
  if (result.subject !== subject) throw new Error(`${what}: verified as ${String(result.subject)}`);
}

/** The median over rounds of `values[r] / baseline[r]`. */
function ratioOfRounds(values: readonly number[], baseline: readonly number[]): number {
  return median(values.map((value, round) => value / baseline[round]!));
}

/**
 * Runs each of `runs` once per round, in an order rotated by the round, with a GC before each; the
 * figures are each run's result (ns per call, requests per second...), per round.
 */
async function interleaved<T extends string, R>(
  runs: Record<T, () => Promise<R>>,
  rounds: number,
): Promise<Record<T, R[]>> {
  const names = Object.keys(runs) as T[];
  const figures = Object.fromEntries(names.map((name) => [name, [] as R[]])) as Record<T, R[]>;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]!;
      collectGarbage();
      figures[name].push(await runs[name]());
    }
  }
  return figures;
}

const ns = (values: readonly number[]): string => `${median(values).toFixed(0)} ns`;
const perRound = (values: readonly number[], digits = 0): string =>
  values.map((v) => v.toFixed(digits)).join(' / ');

// --- 1. a repeated token, from the cache --------------------------------------------------------------

/** The baseline, one awaited loop: SHA-256 of the token, then a Map lookup, in an async function. */
async function baselineLookups(
  calls: number,
  token: string,
  map: ReadonlyMap<string, object>,
): Promise<number> {
  const lookup = async (t: string): Promise<object | undefined> => map.get(hash('sha256', t, 'base64url'));
  const start = performance.now();
  let last: unknown;
  for (let i = 0; i < calls; i++) last = await lookup(token);
  const elapsed = performance.now() - start;
  if (last === undefined) throw new Error('baseline: the token is not in the map');
  return (elapsed * 1e6) / calls;
}

async function verifierLookups(calls: number, token: string, verifier: TokenVerifier): Promise<number> {
  const start = performance.now();
  let last: VerifiedToken | undefined;
  for (let i = 0; i < calls; i++) last = await verifier.verify(token);
  const elapsed = performance.now() - start;
  if (last?.subject === undefined) throw new Error('verifier: no subject');
  return (elapsed * 1e6) / calls;
}

const BASE_JWT = 'baseline, JWT';
const CACHED_JWT = 'verifier.verify(JWT), cached';
const FULL_JWT = 'verifier.verify(JWT), cached, full cache';
const BASE_OPAQUE = 'baseline, opaque';
const CACHED_OPAQUE = 'verifier.verify(opaque), cached';
const FULL_OPAQUE = 'verifier.verify(opaque), cached, full cache';
type CachedName =
  | typeof BASE_JWT
  | typeof CACHED_JWT
  | typeof FULL_JWT
  | typeof BASE_OPAQUE
  | typeof CACHED_OPAQUE
  | typeof FULL_OPAQUE;

/** Results a verifier's default in-memory cache holds at most (`MemoryVerificationCache`'s default). */
const DEFAULT_CACHE_ENTRIES = 10_000;

interface CachedFigures {
  perCall: Record<CachedName, number[]>;
  /** Awaited calls per timed run: the fresh verifier's and the full cache's. */
  calls: { fresh: number; full: number };
  /** Results in the full cache while it is timed. */
  fullEntries: number;
  jwtLength: number;
  opaqueLength: number;
  /** Introspection requests during the timed rounds (0: every call came from the cache). */
  introspections: number;
}

async function measureCached(issuer: Issuer, rounds: number, lookups: number): Promise<CachedFigures> {
  // A verifier as it starts (its default cache holds the two tokens), and one whose cache (the
  // same MemoryVerificationCache, default size) is full of other tokens' results, as on a busy API.
  const fresh = new TokenVerifier({ client: newClient(issuer), audience: AUDIENCE });
  const fullCache = new MemoryVerificationCache();
  const full = new TokenVerifier({ client: newClient(issuer), audience: AUDIENCE, cache: fullCache });
  try {
    const jwt = await issuer.sign(randomUUID());
    const opaque = randomBytes(32).toString('base64url');
    for (const verifier of [fresh, full]) {
      checkResult(await verifier.verify(jwt), SUBJECT, 'JWT');
      checkResult(await verifier.verify(opaque), 'u', 'opaque token'); // introspected once, then cached
    }
    // The other tokens' results, each under its own random key: what a lookup may depend on is
    // the Map's size, not what its entries hold (and how the verifier derives its keys is its own).
    const other: CachedVerification = Object.freeze({ status: 'inactive' });
    while (fullCache.size < DEFAULT_CACHE_ENTRIES) {
      fullCache.set(randomBytes(32).toString('base64url'), other, 300);
    }
    const fullEntries = fullCache.size;
    // The baseline's map is as large: a Map lookup costs the same whatever its size.
    const map = new Map<string, object>([
      [hash('sha256', jwt, 'base64url'), { subject: SUBJECT }],
      [hash('sha256', opaque, 'base64url'), { subject: 'u' }],
    ]);
    while (map.size < DEFAULT_CACHE_ENTRIES) map.set(randomBytes(32).toString('base64url'), {});
    // A full cache is much slower per call (see BENCHMARKS.md): fewer calls keep the run short.
    const calls = { fresh: lookups, full: Math.max(1, Math.ceil(lookups / 20)) };
    const runs: Record<CachedName, (n: number) => Promise<number>> = {
      [BASE_JWT]: (n) => baselineLookups(n, jwt, map),
      [CACHED_JWT]: (n) => verifierLookups(n, jwt, fresh),
      [FULL_JWT]: (n) => verifierLookups(n, jwt, full),
      [BASE_OPAQUE]: (n) => baselineLookups(n, opaque, map),
      [CACHED_OPAQUE]: (n) => verifierLookups(n, opaque, fresh),
      [FULL_OPAQUE]: (n) => verifierLookups(n, opaque, full),
    };
    const callsOf = (name: CachedName): number =>
      name === FULL_JWT || name === FULL_OPAQUE ? calls.full : calls.fresh;
    const names = Object.keys(runs) as CachedName[];
    for (const name of names) await runs[name](Math.ceil(callsOf(name) / 10)); // warm-up
    const before = issuer.requests.introspect;
    const timed = Object.fromEntries(names.map((name) => [name, () => runs[name](callsOf(name))])) as Record<
      CachedName,
      () => Promise<number>
    >;
    const perCall = await interleaved(timed, rounds);
    if (fullCache.size !== fullEntries) throw new Error('the full cache lost entries while timed');
    return {
      perCall,
      calls,
      fullEntries,
      jwtLength: jwt.length,
      opaqueLength: opaque.length,
      introspections: issuer.requests.introspect - before,
    };
  } finally {
    await Promise.all([fresh.close(), full.close()]);
  }
}

interface CachedRatios {
  jwt: number;
  opaque: number;
  fullJwt: number;
  fullOpaque: number;
}

function cachedTable(figures: CachedFigures): { table: string; ratios: CachedRatios } {
  const { perCall } = figures;
  const ratios: CachedRatios = {
    jwt: ratioOfRounds(perCall[CACHED_JWT], perCall[BASE_JWT]),
    opaque: ratioOfRounds(perCall[CACHED_OPAQUE], perCall[BASE_OPAQUE]),
    fullJwt: ratioOfRounds(perCall[FULL_JWT], perCall[BASE_JWT]),
    fullOpaque: ratioOfRounds(perCall[FULL_OPAQUE], perCall[BASE_OPAQUE]),
  };
  const row = (name: CachedName, what: string, ratio: number | undefined): string[] => [
    what,
    ns(perCall[name]),
    perRound(perCall[name]),
    ratio === undefined ? '1.00x' : formatRatio(ratio),
  ];
  const entries = formatCount(figures.fullEntries);
  const table = formatTable(
    [
      { heading: 'awaited call (the same token every call)' },
      { heading: 'ns/op (median)', align: 'right' },
      { heading: 'rounds (ns/op)', align: 'right' },
      { heading: 'vs baseline (median of rounds)', align: 'right' },
    ],
    [
      row(
        BASE_JWT,
        `baseline: await (async (t) => map.get(crypto.hash('sha256', t, 'base64url')))(jwt), ${figures.jwtLength}-char JWT, ${entries}-entry Map`,
        undefined,
      ),
      row(CACHED_JWT, 'await verifier.verify(jwt), cached (new verifier, default cache)', ratios.jwt),
      row(FULL_JWT, `await verifier.verify(jwt), cached, ${entries} results in the cache`, ratios.fullJwt),
      row(BASE_OPAQUE, `baseline: the same, ${figures.opaqueLength}-char opaque token`, undefined),
      row(CACHED_OPAQUE, 'await verifier.verify(opaque), cached (introspected once before)', ratios.opaque),
      row(
        FULL_OPAQUE,
        `await verifier.verify(opaque), cached, ${entries} results in the cache`,
        ratios.fullOpaque,
      ),
    ],
  );
  return { table, ratios };
}

// --- 2. a first-seen JWT ------------------------------------------------------------------------------

/** One timed run over the pool: wall-clock and CPU time (user + system, all threads) per call, ns. */
interface PoolTiming {
  ns: number;
  cpuNs: number;
}

async function timePool(
  pool: readonly string[],
  verify: (token: string) => Promise<unknown>,
): Promise<PoolTiming> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  let last: unknown;
  for (const token of pool) last = await verify(token);
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  if (last !== SUBJECT) throw new Error(`first-seen JWT: verified as ${String(last)}`);
  return { ns: (elapsed * 1e6) / pool.length, cpuNs: ((cpu.user + cpu.system) * 1e3) / pool.length };
}

/** One loop per contender (not one loop calling a closure), so that each call site sees one function. */
function joseVerifications(
  pool: readonly string[],
  key: CryptoKey,
  options: JWTVerifyOptions,
): Promise<PoolTiming> {
  return timePool(pool, async (token) => (await jwtVerify(token, key, options)).payload.sub);
}

function verifierVerifications(pool: readonly string[], verifier: TokenVerifier): Promise<PoolTiming> {
  return timePool(pool, async (token) => (await verifier.verify(token)).subject);
}

const JOSE = 'jose jwtVerify';
const FIRST_SEEN = 'verifier, new token';
const UNCACHED = 'verifier, cache: false';
type FirstSeenName = typeof JOSE | typeof FIRST_SEEN | typeof UNCACHED;

interface FirstSeenFigures {
  perCall: Record<FirstSeenName, PoolTiming[]>;
  tokens: number;
  signMs: number;
}

async function measureFirstSeen(issuer: Issuer, rounds: number, tokens: number): Promise<FirstSeenFigures> {
  const started = performance.now();
  const pool = await signPool(issuer, tokens);
  const signMs = performance.now() - started;
  // A cache of its own, emptied before each run: every call of a run is a token it has not seen.
  const cache = new MemoryVerificationCache({ maxEntries: Math.max(10_000, tokens) });
  const cached = new TokenVerifier({ client: newClient(issuer), audience: AUDIENCE, cache });
  const uncached = new TokenVerifier({ client: newClient(issuer), audience: AUDIENCE, cache: false });
  // The key in hand: imported from the JWK the issuer serves, as the verifier's key set does.
  const key = (await importJWK(issuer.jwk, 'RS256')) as CryptoKey;
  // What the verifier asks of jose (its defaults: 30 s leeway, the asymmetric algorithms).
  const options: JWTVerifyOptions = {
    issuer: issuer.url,
    audience: AUDIENCE,
    algorithms: ['RS256'],
    typ: 'at+jwt',
    clockTolerance: 30,
    requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
  };
  try {
    const runs: Record<FirstSeenName, () => Promise<PoolTiming>> = {
      [JOSE]: () => joseVerifications(pool, key, options),
      [FIRST_SEEN]: () => {
        cache.clear();
        return verifierVerifications(pool, cached);
      },
      [UNCACHED]: () => verifierVerifications(pool, uncached),
    };
    for (const run of Object.values<() => Promise<PoolTiming>>(runs)) await run(); // warm-up, JWKS fetched
    return { perCall: await interleaved(runs, rounds), tokens, signMs };
  } finally {
    await Promise.all([cached.close(), uncached.close()]);
  }
}

function firstSeenTable(figures: FirstSeenFigures): { table: string; ratio: number } {
  const wall = (name: FirstSeenName): number[] => figures.perCall[name].map((t) => t.ns);
  const cpu = (name: FirstSeenName): number[] => figures.perCall[name].map((t) => t.cpuNs);
  const ratio = ratioOfRounds(wall(FIRST_SEEN), wall(JOSE));
  const us = (ns: number): string => (ns / 1000).toFixed(1);
  const row = (name: FirstSeenName, what: string): string[] => [
    what,
    `${us(median(wall(name)))} µs`,
    wall(name).map(us).join(' / '),
    name === JOSE ? '1.00x' : formatRatio(ratioOfRounds(wall(name), wall(JOSE))),
    us(median(cpu(name))),
    name === JOSE ? '1.00x' : formatRatio(ratioOfRounds(cpu(name), cpu(JOSE))),
  ];
  const table = formatTable(
    [
      { heading: `awaited call, a new RS256 JWT each call (${formatCount(figures.tokens)} per round)` },
      { heading: 'per call (median)', align: 'right' },
      { heading: 'rounds (µs)', align: 'right' },
      { heading: 'vs jose (median of rounds)', align: 'right' },
      { heading: 'CPU µs/call', align: 'right' },
      { heading: 'CPU vs jose', align: 'right' },
    ],
    [
      row(
        JOSE,
        'jose jwtVerify(jwt, key, { issuer, audience, algorithms, typ, clockTolerance, requiredClaims })',
      ),
      row(FIRST_SEEN, 'verifier.verify(jwt), default cache (emptied before each round)'),
      row(UNCACHED, 'verifier.verify(jwt), cache: false'),
    ],
  );
  return { table, ratio };
}

// --- 3. concurrent verifications of one new opaque token ----------------------------------------------

interface ConcurrentRound {
  requests: number;
  resolved: number;
  ms: number;
}

async function measureConcurrent(
  issuer: Issuer,
  rounds: number,
  callers: number,
): Promise<ConcurrentRound[]> {
  const verifier = new TokenVerifier({ client: newClient(issuer), audience: AUDIENCE });
  const once = async (count: number): Promise<ConcurrentRound> => {
    const token = randomBytes(32).toString('base64url');
    const before = issuer.requests.introspect;
    const start = performance.now();
    const results = await Promise.allSettled(Array.from({ length: count }, () => verifier.verify(token)));
    const ms = performance.now() - start;
    const resolved = results.filter((r) => r.status === 'fulfilled' && r.value.subject === 'u').length;
    return { requests: issuer.requests.introspect - before, resolved, ms };
  };
  try {
    await once(Math.ceil(callers / 10)); // warm-up: the client's connection, the verifier's paths
    const figures: ConcurrentRound[] = [];
    for (let round = 0; round < rounds; round++) {
      collectGarbage();
      figures.push(await once(callers));
    }
    return figures;
  } finally {
    await verifier.close();
  }
}

function concurrentTable(figures: readonly ConcurrentRound[], callers: number): string {
  const per = (f: (round: ConcurrentRound) => string): string => figures.map(f).join(' / ');
  return formatTable(
    [
      { heading: `${formatCount(callers)} concurrent verifier.verify(token), a new opaque token each round` },
      { heading: 'per round', align: 'right' },
    ],
    [
      ['introspection requests the issuer received', per((r) => String(r.requests))],
      ['verifications resolved (active, sub u)', per((r) => formatCount(r.resolved))],
      ['time until all had answered', per((r) => formatMs(r.ms))],
    ],
  );
}

// --- 4. express: requireToken() against express-oauth2-jwt-bearer -----------------------------------

interface AppsProcess {
  ports: Record<VerifierAppName, number>;
  /** User + system CPU time of the app process so far, µs. */
  cpuMicros(): Promise<number>;
  close(): Promise<void>;
}

function startApps(config: VerifierAppsConfig): Promise<AppsProcess> {
  const entry = fileURLToPath(new URL('../verifier-apps-main.js', import.meta.url));
  // The child does not inherit the parent's --cpu-prof / --expose-gc flags.
  const child = fork(entry, [JSON.stringify(config)], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 0;
  const pending = new Map<number, (cpuMicros: number) => void>();
  child.on('message', (message: VerifierAppsMessage) => {
    if (message.type !== 'cpu') return;
    pending.get(message.id)?.(message.cpuMicros);
    pending.delete(message.id);
  });
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void =>
      reject(new Error(`the verifier apps exited before they were ready (code ${String(code)})`));
    child.once('exit', onExit);
    child.once('error', reject);
    child.on('message', (message: VerifierAppsMessage) => {
      if (message.type !== 'ready') return;
      child.off('exit', onExit);
      child.off('error', reject);
      resolve({
        ports: message.ports,
        cpuMicros: () =>
          new Promise((answer, fail) => {
            const request: VerifierAppsParentMessage = { type: 'cpu', id: nextId++ };
            pending.set(request.id, answer);
            child.send(request, (error) => {
              if (error !== null) {
                pending.delete(request.id);
                fail(error);
              }
            });
          }),
        close: () => stopChild(child),
      });
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** One GET with the token: the apps must answer 200 (and the token's subject) before any timing. */
async function checkApp(name: VerifierAppName, url: string, token: string): Promise<void> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = await response.text();
  const subject = response.status === 200 ? (JSON.parse(body) as { for?: unknown }).for : undefined;
  if (subject !== (name === 'no-auth' ? 'nobody' : SUBJECT)) {
    throw new Error(
      `${name} app answered ${response.status} ${body} (${String(response.headers.get('www-authenticate'))})`,
    );
  }
}

const APPS: readonly VerifierAppName[] = ['tessera', 'express-oauth2-jwt-bearer', 'no-auth'];
const APP_LABELS: Record<VerifierAppName, string> = {
  tessera: 'requireToken(new TokenVerifier({ client, audience }), { baseUrl })',
  'express-oauth2-jwt-bearer': 'express-oauth2-jwt-bearer auth({ issuer, jwksUri, audience, strict: true })',
  'no-auth': 'no token check (the ceiling)',
};

/** One autocannon run's figures. */
interface LoadRun {
  requestsPerSecond: number;
  /** The app process's CPU time per request, µs. */
  cpuMicrosPerRequest: number;
  /** Latency p50 reported by autocannon, ms. */
  latencyP50: number;
}

interface ExpressFigures {
  runs: Record<VerifierAppName, LoadRun[]>;
  connections: number;
  seconds: number;
  jwtLength: number;
}

async function measureExpress(
  issuer: Issuer,
  rounds: number,
  seconds: number,
  connections: number,
): Promise<ExpressFigures> {
  const apps = await startApps({
    issuer: issuer.url,
    jwksUri: issuer.jwksUri,
    introspectionEndpoint: issuer.introspectionEndpoint,
    tokenEndpoint: issuer.tokenEndpoint,
    audience: AUDIENCE,
    route: ROUTE,
  });
  try {
    const token = await issuer.sign(randomUUID());
    const url = (name: VerifierAppName): string => `http://127.0.0.1:${apps.ports[name]}${ROUTE}`;
    for (const name of APPS) await checkApp(name, url(name), token);
    const load = async (name: VerifierAppName, duration: number): Promise<LoadRun> => {
      const cpuBefore = await apps.cpuMicros();
      const result = await autocannon({
        url: url(name),
        connections,
        duration,
        headers: { authorization: `Bearer ${token}` },
      });
      const cpu = (await apps.cpuMicros()) - cpuBefore;
      if (result.errors > 0 || result.non2xx > 0 || result['2xx'] === 0) {
        throw new Error(
          `${name} app under load: ${result['2xx']} 2xx, ${result.non2xx} non-2xx, ${result.errors} errors`,
        );
      }
      return {
        requestsPerSecond: result['2xx'] / result.duration,
        cpuMicrosPerRequest: cpu / result['2xx'],
        latencyP50: result.latency.p50,
      };
    };
    for (const name of APPS) await load(name, EXPRESS_WARMUP_SECONDS);
    const runs = Object.fromEntries(APPS.map((name) => [name, () => load(name, seconds)])) as Record<
      VerifierAppName,
      () => Promise<LoadRun>
    >;
    return { runs: await interleaved(runs, rounds), connections, seconds, jwtLength: token.length };
  } finally {
    await apps.close();
  }
}

function expressTable(figures: ExpressFigures): { table: string; ratio: number } {
  const rps = (name: VerifierAppName): number[] => figures.runs[name].map((r) => r.requestsPerSecond);
  const base = rps('express-oauth2-jwt-bearer');
  const ratio = ratioOfRounds(rps('tessera'), base);
  const table = formatTable(
    [
      { heading: 'express 5, GET /orders, the same JWT every request' },
      { heading: 'req/s (median)', align: 'right' },
      { heading: 'rounds (req/s)', align: 'right' },
      { heading: 'vs express-oauth2-jwt-bearer (median of rounds)', align: 'right' },
      { heading: 'app CPU µs/req', align: 'right' },
      { heading: 'latency p50', align: 'right' },
    ],
    APPS.map((name) => [
      APP_LABELS[name],
      formatCount(median(rps(name))),
      rps(name).map(formatCount).join(' / '),
      formatRatio(ratioOfRounds(rps(name), base)),
      median(figures.runs[name].map((r) => r.cpuMicrosPerRequest)).toFixed(0),
      `${median(figures.runs[name].map((r) => r.latencyP50)).toFixed(0)} ms`,
    ]),
  );
  return { table, ratio };
}

// --- the suite -------------------------------------------------------------------------------------

/** The TokenVerifier suite (see the module comment). */
export const verifierSuite: Suite = {
  name: 'verifier',
  title:
    'TokenVerifier: cached verifications against SHA-256 + Map, first-seen JWTs against jose, concurrent introspection, express against express-oauth2-jwt-bearer',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const { rounds } = context.config;
    const lookups = Math.max(1, integerFromEnv('BENCH_VERIFIER_LOOKUPS', 200_000));
    const tokens = Math.max(1, integerFromEnv('BENCH_VERIFIER_JWTS', 2_000));
    const callers = Math.max(1, integerFromEnv('BENCH_VERIFIER_CALLERS', 10_000));
    const seconds = Math.max(1, integerFromEnv('BENCH_VERIFIER_SECONDS', 3));
    const connections = Math.max(1, integerFromEnv('BENCH_VERIFIER_CONNECTIONS', 10));
    const named = VERIFIER_PARTS.filter((part) => context.config.only?.has(part) ?? false);
    const runs = (part: (typeof VERIFIER_PARTS)[number]): boolean =>
      named.length === 0 || named.includes(part);
    const issuer = await startIssuer();
    const targets: TargetCheck[] = [];
    const sections: string[] = [
      `issuer: ${issuer.url} (this process; RS256 2048-bit key, kid ${KID}), audience ${AUDIENCE}`,
    ];
    try {
      if (runs('cached')) {
        const figures = await measureCached(issuer, rounds, lookups);
        if (figures.introspections !== 0) {
          throw new Error(`cached verifications made ${figures.introspections} introspection requests`);
        }
        const { table, ratios } = cachedTable(figures);
        const full = `, ${formatCount(figures.fullEntries)} results in the cache`;
        sections.push(
          `### A repeated token, from the cache: ${formatCount(figures.calls.fresh)} awaited calls per round ` +
            `(${formatCount(figures.calls.full)} with the full cache), ${rounds} rounds\n\n${table}`,
        );
        const cachedTarget = (what: string, ratio: number, where = ''): TargetCheck => ({
          description: `cached verifier.verify(${what})${where} / SHA-256 + Map lookup <= ${CACHED_TARGET_RATIO}`,
          measured: ratio,
          met: ratio <= CACHED_TARGET_RATIO,
        });
        targets.push(
          cachedTarget('JWT', ratios.jwt),
          cachedTarget('opaque', ratios.opaque),
          cachedTarget('JWT', ratios.fullJwt, full),
          cachedTarget('opaque', ratios.fullOpaque, full),
        );
      }
      if (runs('first-seen')) {
        const figures = await measureFirstSeen(issuer, rounds, tokens);
        const { table, ratio } = firstSeenTable(figures);
        sections.push(
          `### A first-seen JWT: ${formatCount(tokens)} distinct pre-signed tokens (signed in ${formatMs(figures.signMs)}), ` +
            `one after another, ${rounds} rounds\n\n${table}`,
        );
        targets.push({
          description: `first-seen JWT: verifier.verify / jose jwtVerify with the key in hand (ns per call) <= ${FIRST_SEEN_TARGET_RATIO}`,
          measured: ratio,
          met: ratio <= FIRST_SEEN_TARGET_RATIO,
        });
      }
      if (runs('concurrent')) {
        const figures = await measureConcurrent(issuer, rounds, callers);
        sections.push(
          `### ${formatCount(callers)} concurrent verifications of one new opaque token, ${rounds} rounds\n\n` +
            concurrentTable(figures, callers),
        );
        const clean = figures.every((r) => r.resolved === callers);
        targets.push({
          description: `${formatCount(callers)} concurrent verifications of one new opaque token: introspection requests = ${CONCURRENT_TARGET_REQUESTS}`,
          measured: Math.max(...figures.map((r) => r.requests)),
          shown: `${figures.map((r) => r.requests).join(' / ')} (per round); all resolved: ${clean ? 'yes' : 'NO'}`,
          met: figures.every((r) => r.requests === CONCURRENT_TARGET_REQUESTS) && clean,
        });
      }
      if (runs('express')) {
        const figures = await measureExpress(issuer, rounds, seconds, connections);
        const { table, ratio } = expressTable(figures);
        sections.push(
          `### express apps under autocannon: ${connections} connections, ${seconds} s per run (after ${EXPRESS_WARMUP_SECONDS} s of warm-up), ` +
            `${rounds} rounds, ${figures.jwtLength}-char JWT; apps in a child process\n\n${table}`,
        );
        targets.push({
          description: `express + requireToken() / express + express-oauth2-jwt-bearer (req/s) >= ${EXPRESS_TARGET_RATIO}`,
          measured: ratio,
          met: ratio >= EXPRESS_TARGET_RATIO,
        });
      }
      sections.push(
        `The issuer answered ${issuer.requests.jwks} JWKS requests (one per verifier, and the express apps') ` +
          `and ${formatCount(issuer.requests.introspect)} introspection requests in all.`,
      );
    } finally {
      await issuer.close();
    }
    return { table: sections.join('\n\n'), targets };
  },
};
