/**
 * The properties every fuzz case must keep, shared by the Client and TokenManager fuzz tests:
 *
 * 1. the call settles (within a generous deadline over the client's small `timeoutMs`);
 * 2. it resolves with a sane result, or rejects with a `TesseraError` of a documented code;
 * 3. no secret of the request, in any encoded form or as any 12-character window of one, is in the
 *    error (message, stack, JSON, `util.inspect`, `String(cause)`) or in an event payload;
 * 4. no prototype is polluted;
 * 5. no promise rejection goes unhandled.
 *
 * A case collects every broken property and fails once, listing them all.
 */
import { appendFileSync } from 'node:fs';
import { inspect, types } from 'node:util';
import vm from 'node:vm';
import type fc from 'fast-check';
import {
  ConfigurationError,
  IdTokenError,
  InternalError,
  OAuthError,
  ResponseError,
  TesseraError,
  TokenManagerError,
  TokenStoreError,
  TransportError,
} from '@tessera/core';
import type {
  BackchannelAuthenticationResponse,
  DeviceAuthorizationResponse,
  IntrospectionResponse,
  RevocationResult,
  TesseraErrorCode,
  TokenResponse,
  TokenSet,
} from '@tessera/core';
import type { RecordedRequest } from '../support/fake-server.js';
import { ECHO_ENCODINGS } from './answer-plans.js';
import { encodeEcho } from './hostile-server.js';
import type { HostileCase } from './hostile-server.js';
import { TIMEOUT_MS } from './clients.js';

// --- settings ------------------------------------------------------------------------------------

function envInteger(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0)
    throw new Error(`${name} must be a non-negative integer (got ${value})`);
  return parsed;
}

/** Fixed, so the normal run is deterministic; `FUZZ_SEED` replays another run. */
export const FUZZ_SEED = envInteger('FUZZ_SEED') ?? 20_251_201;
/** Cases per property: modest in the normal run, `FUZZ_RUNS` (or `pnpm fuzz --runs N`) for more. */
export const FUZZ_RUNS = envInteger('FUZZ_RUNS') ?? 20;

/**
 * A file to log every failing case to (one JSON line each, with its input) instead of failing:
 * `pnpm fuzz --survey FILE` lists every distinct failure of a run, where a normal run stops at the
 * first one of each property.
 */
export const FUZZ_SURVEY = process.env.FUZZ_SURVEY || undefined;

/** `fc.assert` parameters: the first failure ends the run and is printed with its plan. */
export function fuzzParameters<T>(): fc.Parameters<T> {
  return { seed: FUZZ_SEED, numRuns: FUZZ_RUNS, endOnFailure: true };
}

/** Jest's timeout for one property: a guard against a harness that hangs, not a timing check. */
export function propertyTimeoutMs(deadlineMs: number): number {
  return 30_000 + FUZZ_RUNS * deadlineMs;
}

/** How long a call may take before it counts as hanging: every request it may make timing out, and a margin. */
export function deadlineMs(maxRequests: number): number {
  return 1_000 + maxRequests * TIMEOUT_MS;
}

// --- settling ------------------------------------------------------------------------------------

export type Outcome<T> =
  { settled: 'resolved'; value: T } | { settled: 'rejected'; error: unknown } | { settled: 'no' };

/** Runs `call`, racing it against the deadline; the call's own promise is always handled. */
export async function settle<T>(call: () => Promise<T>, deadline: number): Promise<Outcome<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<Outcome<T>>((resolve) => {
    timer = setTimeout(() => resolve({ settled: 'no' }), deadline);
  });
  const run = Promise.resolve()
    .then(call)
    .then(
      (value): Outcome<T> => ({ settled: 'resolved', value }),
      (error: unknown): Outcome<T> => ({ settled: 'rejected', error }),
    );
  try {
    return await Promise.race([run, late]);
  } finally {
    clearTimeout(timer);
  }
}

// --- errors --------------------------------------------------------------------------------------

/** Every code of `TesseraErrorCode` (a missing or extra one fails `pnpm typecheck`). */
const DOCUMENTED_CODES: Record<TesseraErrorCode, true> = {
  OAUTH_ERROR: true,
  INVALID_RESPONSE: true,
  HTTP_ERROR: true,
  NETWORK_ERROR: true,
  TIMEOUT: true,
  ABORTED: true,
  INVALID_ID_TOKEN: true,
  STORE_ERROR: true,
  INVALID_CONFIGURATION: true,
  UNSUPPORTED: true,
  NO_TOKENS: true,
  CLOSED: true,
  INTERNAL: true,
};

/** The exported error classes and the codes each may carry. */
const CLASS_CODES = new Map<unknown, readonly TesseraErrorCode[]>([
  [OAuthError, ['OAUTH_ERROR']],
  [ResponseError, ['INVALID_RESPONSE', 'HTTP_ERROR']],
  [TransportError, ['NETWORK_ERROR', 'TIMEOUT', 'ABORTED']],
  [IdTokenError, ['INVALID_ID_TOKEN']],
  [TokenStoreError, ['STORE_ERROR']],
  [ConfigurationError, ['INVALID_CONFIGURATION', 'UNSUPPORTED']],
  [TokenManagerError, ['NO_TOKENS', 'CLOSED']],
  [InternalError, ['INTERNAL']],
]);

/** Errors of the language itself: a bug in the SDK when they escape, whatever realm made them. */
const ENGINE_ERRORS = new Set([
  'TypeError',
  'RangeError',
  'SyntaxError',
  'ReferenceError',
  'EvalError',
  'URIError',
]);

/** `Name: message` and the first frames, enough to find where it came from. */
export function describeError(error: unknown): string {
  if (!types.isNativeError(error) && !(error instanceof Error))
    return `${typeof error} ${inspect(error, { depth: 1 }).slice(0, 200)}`;
  const e = error as Error;
  const frames = (e.stack ?? '')
    .split('\n')
    .slice(1)
    .filter((line) => line.includes('/packages/') && !line.includes('/test/'))
    .slice(0, 3)
    .map((line) =>
      line
        .trim()
        .replace(/^at /, '')
        .replace(/\(?\/work\/main\//, '('),
    );
  return `${e.name}: ${e.message.slice(0, 200)}${frames.length > 0 ? ` [${frames.join(' < ')}]` : ''}`;
}

/** Problems with a rejection: not a TesseraError, an undocumented code, or a wrapped engine error. */
export function errorProblems(error: unknown, where: string): string[] {
  if (!(error instanceof TesseraError)) {
    return [`${where} rejected with a raw ${describeError(error)} (not a TesseraError)`];
  }
  const problems: string[] = [];
  if (!(error.code in DOCUMENTED_CODES)) problems.push(`${where}: undocumented code ${String(error.code)}`);
  const codes = CLASS_CODES.get(error.constructor);
  if (codes === undefined)
    problems.push(`${where}: ${error.constructor.name} is not an exported error class`);
  else if (!codes.includes(error.code)) problems.push(`${where}: ${error.name} with code ${error.code}`);
  // A catch-all that copies an engine error's message (e.g. TokenManager's asTesseraError) hides a
  // bug behind "your configuration is wrong".
  const cause = (error as { cause?: unknown }).cause;
  if (
    error instanceof ConfigurationError &&
    types.isNativeError(cause) &&
    ENGINE_ERRORS.has(cause.name) &&
    cause.message === error.message
  ) {
    problems.push(`${where}: ${error.name} [${error.code}] is a raw ${describeError(cause)} in disguise`);
  }
  return problems;
}

// --- secrets -------------------------------------------------------------------------------------

export interface Secret {
  name: string;
  value: string;
}

/** Shorter windows than this are not secret enough to look for (and would match by chance). */
const WINDOW = 12;

/** Form fields whose values are credentials. */
const SECRET_FIELDS = [
  'client_secret',
  'client_assertion',
  'refresh_token',
  'token',
  'device_code',
  'auth_req_id',
  'subject_token',
  'actor_token',
  'assertion',
  'code',
  'code_verifier',
  'password',
];

/** The secrets a request put on the wire: credentials in headers and in the form. */
export function wireSecrets(requests: readonly RecordedRequest[]): Secret[] {
  const secrets: Secret[] = [];
  for (const request of requests) {
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const credentials = authorization.slice(authorization.indexOf(' ') + 1);
      secrets.push({ name: 'Authorization header', value: credentials });
    }
    const dpop = request.headers.dpop;
    if (typeof dpop === 'string') secrets.push({ name: 'DPoP header', value: dpop });
    for (const field of SECRET_FIELDS)
      for (const value of request.form.getAll(field)) secrets.push({ name: field, value });
  }
  return secrets;
}

/**
 * Every form a secret may take in a text: each echo encoding (the text ones also upper- and
 * lower-cased), each of those as `JSON.stringify` and `util.inspect` escape it inside a string, and
 * its base64 at every byte offset of a longer base64 text. (Of a JWT only the signature is looked
 * for, see `windowsOf`.)
 */
/** Text that no form-, percent- or JSON-escaping changes (a JWT signature, a base64url key). */
const UNRESERVED = /^[A-Za-z0-9._~-]*$/;
/** What JSON.stringify or util.inspect escapes inside a string. */
const ESCAPED_IN_STRINGS = /["'\\\p{Cc}\p{Cs}\u2028\u2029]/u;

function formsOf(value: string): Map<string, string> {
  const forms = new Map<string, string>();
  const add = (text: string, name: string): void => {
    if (!forms.has(text)) forms.set(text, name);
  };
  const encodings = UNRESERVED.test(value)
    ? ECHO_ENCODINGS.filter((e) => e === 'raw' || e.startsWith('base64'))
    : ECHO_ENCODINGS;
  for (const encoding of encodings) {
    const encoded = encodeEcho(value, encoding);
    // A server upper- or lower-cases text, not base64 (which it only ever sends as it is).
    const cased = encoding.startsWith('base64')
      ? []
      : ([
          [', upper-cased', encoded.toUpperCase()],
          [', lower-cased', encoded.toLowerCase()],
        ] as const);
    for (const [casing, text] of [['', encoded] as const, ...cased]) {
      add(text, `${encoding}${casing}`);
      if (!ESCAPED_IN_STRINGS.test(text)) continue;
      add(JSON.stringify(text).slice(1, -1), `${encoding}${casing}, JSON-escaped`);
      add(inspect(text).slice(1, -1), `${encoding}${casing}, inspect-escaped`);
    }
  }
  // Inside a longer base64 text the secret starts at any byte offset: its base64 is one of three.
  for (const variant of ['base64', 'base64url'] as const) {
    for (const offset of [1, 2]) {
      const shifted = Buffer.concat([Buffer.alloc(offset), Buffer.from(value, 'utf8')])
        .toString(variant)
        .replace(/=+$/, '');
      // The first quad mixes in what precedes the secret, the last one what follows it.
      add(shifted.slice(4, -4), `${variant} at byte offset ${offset}`);
    }
  }
  return forms;
}

const windowCache = new Map<string, Map<string, string>>();

/**
 * Window → which form of which secret it belongs to. Of a JWT (a client assertion, a DPoP proof)
 * only the signature is secret: its header and claims are predictable, and other JWTs share them.
 */
function windowsOf(secret: Secret): Map<string, string> {
  const signature = /^[\w-]+\.[\w-]+\.([\w-]+)$/.exec(secret.value)?.[1];
  const [label, text] =
    signature === undefined ? [secret.name, secret.value] : [`${secret.name} (JWT signature)`, signature];
  const key = `${label}\u0000${text}`;
  let windows = windowCache.get(key);
  if (windows === undefined) {
    windows = new Map();
    for (const [form, name] of formsOf(text)) {
      for (let i = 0; i + WINDOW <= form.length; i++) {
        const window = form.slice(i, i + WINDOW);
        if (!windows.has(window)) windows.set(window, `${label} as ${name}`);
      }
    }
    if (windowCache.size > 5_000) windowCache.clear();
    windowCache.set(key, windows);
  }
  return windows;
}

/** Finds any 12-character window of any form of any secret in a text. */
export class SecretIndex {
  readonly #windows: Array<Map<string, string>>;

  constructor(secrets: Iterable<Secret>) {
    this.#windows = [...secrets].filter((s) => s.value.length >= WINDOW).map(windowsOf);
  }

  find(text: string): { what: string; excerpt: string } | undefined {
    for (let i = 0; i + WINDOW <= text.length; i++) {
      const window = text.slice(i, i + WINDOW);
      for (const windows of this.#windows) {
        const what = windows.get(window);
        if (what !== undefined) {
          return { what, excerpt: `…${text.slice(Math.max(0, i - 30), i + WINDOW + 30)}…` };
        }
      }
    }
    return undefined;
  }
}

/** Serialises a value for the leak check; a serialiser that throws is a problem of its own. */
function serialise(where: string, make: () => string | undefined, problems: string[]): string {
  try {
    return make() ?? '';
  } catch (error) {
    problems.push(`${where} threw ${describeError(error)}`);
    return '';
  }
}

/** What a user may see of an error: message, stack, JSON, `util.inspect`, its cause as a string. */
function errorTexts(error: unknown, problems: string[]): Array<[string, string]> {
  const e = error as { message?: unknown; stack?: unknown; cause?: unknown };
  return [
    ['err.message', String(e?.message)],
    ['err.stack', String(e?.stack)],
    ['JSON.stringify(err)', serialise('JSON.stringify(err)', () => JSON.stringify(error), problems)],
    [
      'util.inspect(err)',
      serialise('util.inspect(err)', () => inspect(error, { depth: 10, showHidden: true }), problems),
    ],
    ['String(err.cause)', serialise('String(err.cause)', () => String(e?.cause), problems)],
  ];
}

function payloadTexts(payload: unknown, problems: string[]): Array<[string, string]> {
  return [
    ['JSON', serialise('JSON.stringify(payload)', () => JSON.stringify(payload), problems)],
    [
      'util.inspect',
      serialise('util.inspect(payload)', () => inspect(payload, { depth: 10, showHidden: true }), problems),
    ],
  ];
}

/** Where in a value a text is: `message`, `providerError.code`, `results.0.error.body`, ... */
function fieldsHolding(
  value: unknown,
  index: SecretIndex,
  path = '',
  depth = 0,
  seen = new Set<unknown>(),
): string[] {
  if (typeof value === 'string') return index.find(value) === undefined ? [] : [path || '(the value)'];
  if (typeof value !== 'object' || value === null || depth > 6 || seen.has(value)) return [];
  seen.add(value);
  const fields = new Map<string, unknown>(Object.entries(value));
  if (value instanceof Error) {
    fields.set('message', value.message);
    if (value.cause !== undefined) fields.set('cause', value.cause);
  }
  return [...fields].flatMap(([key, member]) =>
    fieldsHolding(member, index, path === '' ? key : `${path}.${key}`, depth + 1, seen),
  );
}

function leaks(index: SecretIndex, where: string, texts: Array<[string, string]>, value: unknown): string[] {
  const problems: string[] = [];
  let fields: string[] | undefined;
  for (const [what, text] of texts) {
    const found = index.find(text);
    if (found === undefined) continue;
    fields ??= fieldsHolding(value, index);
    const field = fields.length === 0 ? '' : ` (in ${fields.join(', ')})`;
    problems.push(`${where}: ${found.what} leaked into ${what}${field}: ${JSON.stringify(found.excerpt)}`);
  }
  return problems;
}

// --- results -------------------------------------------------------------------------------------

const TOKEN_TYPES = ['Bearer', 'DPoP', 'N_A'];

function finiteNonNegative(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function optionalString(problems: string[], what: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'string')
    problems.push(`${what} is ${inspect(value, { depth: 0 })}`);
}

/** A member the result inherits instead of owning, e.g. after `__proto__` was assigned. */
function inheritedPollution(problems: string[], what: string, value: object): void {
  if ('polluted' in value && !Object.hasOwn(value, 'polluted'))
    problems.push(`${what} inherits a "polluted" member from its prototype`);
}

export function tokenResponseProblems(value: TokenResponse, what = 'token response'): string[] {
  if (typeof value !== 'object' || value === null) return [`${what} is ${inspect(value)}`];
  const problems: string[] = [];
  if (typeof value.access_token !== 'string' || value.access_token === '')
    problems.push(`${what}: access_token is ${inspect(value.access_token, { depth: 0 })}`);
  if (!TOKEN_TYPES.includes(value.token_type))
    problems.push(`${what}: token_type is ${inspect(value.token_type, { depth: 0 })}`);
  if (value.expires_in !== undefined && !finiteNonNegative(value.expires_in))
    problems.push(`${what}: expires_in is ${inspect(value.expires_in)}`);
  for (const member of ['refresh_token', 'scope', 'id_token', 'issued_token_type'] as const)
    optionalString(problems, `${what}: ${member}`, value[member]);
  inheritedPollution(problems, what, value);
  if (typeof value.expiresIn !== 'function' || typeof value.claims !== 'function') {
    problems.push(
      `${what}: the helpers are gone (expiresIn is ${typeof value.expiresIn}, claims is ${typeof value.claims})`,
    );
    return problems;
  }
  const expiresIn = value.expiresIn();
  if (expiresIn !== undefined && !finiteNonNegative(expiresIn))
    problems.push(`${what}: expiresIn() is ${inspect(expiresIn)}`);
  const claims = value.claims();
  if (value.id_token !== undefined && (typeof claims !== 'object' || claims === null))
    problems.push(`${what}: an id_token without validated claims`);
  return problems;
}

export function introspectionProblems(value: IntrospectionResponse): string[] {
  if (typeof value !== 'object' || value === null) return [`introspection result is ${inspect(value)}`];
  const problems: string[] = [];
  if (typeof value.active !== 'boolean') problems.push(`introspection: active is ${inspect(value.active)}`);
  if (value.active === false && Object.keys(value).join() !== 'active')
    problems.push(`introspection: an inactive result has ${Object.keys(value).join(', ')}`);
  for (const member of ['exp', 'iat', 'nbf'] as const) {
    if (value[member] !== undefined && !finiteNonNegative(value[member]))
      problems.push(`introspection: ${member} is ${inspect(value[member])}`);
  }
  optionalString(problems, 'introspection: scope', value.scope);
  inheritedPollution(problems, 'introspection result', value);
  return problems;
}

export function deviceProblems(value: DeviceAuthorizationResponse): string[] {
  if (typeof value !== 'object' || value === null)
    return [`device authorization result is ${inspect(value)}`];
  const problems: string[] = [];
  for (const member of ['device_code', 'user_code', 'verification_uri'] as const) {
    if (typeof value[member] !== 'string' || value[member] === '')
      problems.push(`device authorization: ${member} is ${inspect(value[member], { depth: 0 })}`);
  }
  if (!finiteNonNegative(value.expires_in) || value.expires_in === 0)
    problems.push(`device authorization: expires_in is ${inspect(value.expires_in)}`);
  if (value.interval !== undefined && !finiteNonNegative(value.interval))
    problems.push(`device authorization: interval is ${inspect(value.interval)}`);
  inheritedPollution(problems, 'device authorization result', value);
  return problems;
}

export function cibaProblems(value: BackchannelAuthenticationResponse): string[] {
  if (typeof value !== 'object' || value === null)
    return [`backchannel authentication result is ${inspect(value)}`];
  const problems: string[] = [];
  if (typeof value.auth_req_id !== 'string' || value.auth_req_id === '')
    problems.push(`backchannel authentication: auth_req_id is ${inspect(value.auth_req_id, { depth: 0 })}`);
  if (!finiteNonNegative(value.expires_in) || value.expires_in === 0)
    problems.push(`backchannel authentication: expires_in is ${inspect(value.expires_in)}`);
  if (value.interval !== undefined && !finiteNonNegative(value.interval))
    problems.push(`backchannel authentication: interval is ${inspect(value.interval)}`);
  inheritedPollution(problems, 'backchannel authentication result', value);
  return problems;
}

export function tokenSetProblems(value: TokenSet): string[] {
  if (typeof value !== 'object' || value === null) return [`token set is ${inspect(value)}`];
  const problems: string[] = [];
  if (typeof value.accessToken !== 'string' || value.accessToken === '')
    problems.push(`token set: accessToken is ${inspect(value.accessToken, { depth: 0 })}`);
  if (!TOKEN_TYPES.includes(value.tokenType))
    problems.push(`token set: tokenType is ${inspect(value.tokenType, { depth: 0 })}`);
  if (
    value.expiresAt !== undefined &&
    !(typeof value.expiresAt === 'number' && Number.isFinite(value.expiresAt))
  ) {
    problems.push(`token set: expiresAt is ${inspect(value.expiresAt)}`);
  }
  for (const member of ['refreshToken', 'idToken', 'scope'] as const)
    optionalString(problems, `token set: ${member}`, value[member]);
  return problems;
}

export function accessTokenProblems(value: string): string[] {
  return typeof value === 'string' && value !== '' ? [] : [`access token is ${inspect(value, { depth: 0 })}`];
}

export function revocationProblems(value: RevocationResult[]): string[] {
  if (!Array.isArray(value)) return [`revocation results are ${inspect(value)}`];
  return value.flatMap((result, i) => {
    const problems: string[] = [];
    if (result.tokenTypeHint !== 'access_token' && result.tokenTypeHint !== 'refresh_token')
      problems.push(`results[${i}].tokenTypeHint is ${inspect(result.tokenTypeHint)}`);
    if (typeof result.revoked !== 'boolean')
      problems.push(`results[${i}].revoked is ${inspect(result.revoked)}`);
    if (result.revoked === false && result.error === undefined)
      problems.push(`results[${i}] is not revoked and has no error`);
    return problems;
  });
}

// --- the suite-wide watch ------------------------------------------------------------------------

/**
 * Watches for unhandled rejections and prototype pollution across a test file. Jest gives each test
 * file its own copy of `process`, whose listeners never hear of rejections: the real one is the
 * main context's, reached through `vm.runInThisContext`. Prototypes of both realms are watched (the
 * test's and node's own, which parses HTTP and decodes buffers).
 */
export class SuiteWatch {
  readonly #processes: NodeJS.Process[];
  readonly #unhandled: unknown[] = [];
  #seen = 0;
  readonly #onRejection = (reason: unknown): void => {
    this.#unhandled.push(reason);
  };
  readonly #prototypes: Array<[string, object, Set<PropertyKey>]>;
  readonly #emptyObjects: Array<[string, () => object]>;

  constructor() {
    const real = vm.runInThisContext('process') as NodeJS.Process;
    this.#processes = real === process ? [process] : [process, real];
    const outer = vm.runInThisContext(
      '({ Object: Object.prototype, Array: Array.prototype, Function: Function.prototype, String: String.prototype })',
    ) as Record<string, object>;
    const prototypes: Array<[string, object]> = [
      ['Object.prototype', Object.prototype],
      ['Array.prototype', Array.prototype],
      ['Function.prototype', Function.prototype],
      ['String.prototype', String.prototype],
      ...Object.entries(outer).map(([name, proto]): [string, object] => [
        `${name}.prototype (node's realm)`,
        proto,
      ]),
    ];
    this.#prototypes = prototypes.map(([name, proto]) => [name, proto, new Set(Reflect.ownKeys(proto))]);
    const outerEmpty = vm.runInThisContext('() => ({})') as () => object;
    this.#emptyObjects = [
      ['({})', () => ({})],
      ["({}) of node's realm", outerEmpty],
    ];
    for (const target of this.#processes) target.on('unhandledRejection', this.#onRejection);
  }

  /** Every unhandled rejection of the whole file. */
  get unhandled(): readonly unknown[] {
    return this.#unhandled;
  }

  /** Rejections that went unhandled since the last call. */
  takeUnhandled(): unknown[] {
    const fresh = this.#unhandled.slice(this.#seen);
    this.#seen = this.#unhandled.length;
    return fresh;
  }

  /** New members of the watched prototypes (removed again, so one case does not spoil the next). */
  pollution(): string[] {
    const problems: string[] = [];
    for (const [name, proto, keys] of this.#prototypes) {
      for (const key of Reflect.ownKeys(proto)) {
        if (keys.has(key)) continue;
        problems.push(`prototype pollution: ${name} has a new member ${String(key)}`);
        Reflect.deleteProperty(proto, key);
      }
    }
    for (const [name, make] of this.#emptyObjects) {
      const polluted = (make() as { polluted?: unknown }).polluted;
      if (polluted !== undefined)
        problems.push(`prototype pollution: ${name}.polluted is ${inspect(polluted)}`);
    }
    return problems;
  }

  stop(): void {
    for (const target of this.#processes) target.off('unhandledRejection', this.#onRejection);
  }
}

// --- one case ------------------------------------------------------------------------------------

export interface FuzzCall<T> {
  /** The call under test, e.g. `'clientCredentialsGrant'`. */
  what: string;
  /** The generated input, for the survey log. */
  input: unknown;
  fuzzCase: HostileCase;
  /** Secrets the caller handed over (the client secret, the tokens of the call). */
  secrets: Secret[];
  /** How many requests the call may make (each may take `timeoutMs`). */
  maxRequests: number;
  call: () => Promise<T>;
  /** Problems with a result. */
  check: (value: T) => string[];
  /** Errors a result carries (e.g. in revocation results), checked like a rejection. */
  errorsIn?: (value: T) => Array<[string, unknown]>;
  /** Values that must hold no secret either (event payloads), read after the call settled. */
  payloads?: () => Array<[string, unknown]>;
  /** Token values of the result, which no event payload may carry. */
  tokensOf?: (value: T) => Secret[];
}

/** Runs one case and throws, listing every broken property, if any is broken. */
export async function checkCall<T>(watch: SuiteWatch, run: FuzzCall<T>): Promise<void> {
  const deadline = deadlineMs(run.maxRequests);
  const outcome = await settle(run.call, deadline);
  // Let a rejection that nobody handles be reported before looking.
  await new Promise((resolve) => setImmediate(resolve));
  const { fuzzCase, what } = run;
  const problems: string[] = fuzzCase.harnessErrors.map((error) => `harness: ${error}`);
  const index = new SecretIndex([...run.secrets, ...wireSecrets(fuzzCase.requests)]);
  let tokens: Secret[] = [];
  if (outcome.settled === 'no') {
    const paths = fuzzCase.requests.map(
      (r) => `${r.method} ${r.path.replace(fuzzCase.issuer.replace(/^https?:\/\/[^/]+/, ''), '')}`,
    );
    problems.push(
      `${what} did not settle within ${deadline} ms (timeoutMs ${TIMEOUT_MS}); the server saw ${paths.length} request(s): ${paths.join(', ')}`,
    );
  } else if (outcome.settled === 'resolved') {
    problems.push(...run.check(outcome.value));
    for (const [where, error] of run.errorsIn?.(outcome.value) ?? []) {
      problems.push(...errorProblems(error, where));
      problems.push(...leaks(index, where, errorTexts(error, problems), error));
    }
    // A token of few distinct characters ('xxxx…') is not distinctive: it may match anything.
    tokens = (run.tokensOf?.(outcome.value) ?? []).filter(
      (token) => typeof token.value === 'string' && new Set(token.value).size >= 8,
    );
  } else {
    problems.push(...errorProblems(outcome.error, what));
    problems.push(...leaks(index, `${what} rejection`, errorTexts(outcome.error, problems), outcome.error));
  }
  const payloadIndex =
    tokens.length === 0
      ? index
      : new SecretIndex([...run.secrets, ...wireSecrets(fuzzCase.requests), ...tokens]);
  for (const [where, payload] of run.payloads?.() ?? [])
    problems.push(...leaks(payloadIndex, where, payloadTexts(payload, problems), payload));
  problems.push(...watch.pollution());
  problems.push(...watch.takeUnhandled().map((reason) => `unhandled rejection: ${describeError(reason)}`));
  if (problems.length > 0 && FUZZ_SURVEY !== undefined) {
    appendFileSync(
      FUZZ_SURVEY,
      `${JSON.stringify({ what, case: fuzzCase.id, problems, input: run.input })}\n`,
    );
  } else if (problems.length > 0) {
    const settled =
      outcome.settled === 'rejected'
        ? `rejected with ${describeError(outcome.error)}`
        : outcome.settled === 'resolved'
          ? 'resolved'
          : 'never settled';
    throw new Error(
      `${what} (case c${fuzzCase.id}) ${settled}:\n  - ${[...new Set(problems)].join('\n  - ')}`,
    );
  }
}
