import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  /** Epoch milliseconds, or undefined for no expiry. */
  expiresAt: number | undefined;
}

/** Models whose entries belong to a grant and are removed with it (`revokeByGrantId`). */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** How many writes between two sweeps of expired entries. */
const SWEEP_EVERY_WRITES = 1_000;

/**
 * Copies a payload through JSON, as a real store would. Not `structuredClone`: under jest's VM
 * modules the global `structuredClone` builds objects of the outer realm, whose `constructor` is not
 * the `Object` oidc-provider compares against (its `isPlainObject` check of client `jwks`).
 */
function copy(payload: AdapterPayload): AdapterPayload {
  return JSON.parse(JSON.stringify(payload)) as AdapterPayload;
}

/** Entries the store starts with: model name → id → payload (e.g. `Client` registrations). */
export type AdapterSeed = Record<string, Record<string, AdapterPayload>>;

/**
 * Creates the oidc-provider storage adapter of one test server: a plain in-memory store, private to
 * that server (nothing is shared between servers or kept in module state), without timers and without
 * eviction, so no token disappears under load. Expired entries are dropped when read and swept every
 * {@link SWEEP_EVERY_WRITES} writes. Payloads are copied in and out, as a real store would.
 */
/** The adapter factory, and a look at what it holds (for the test server's own grants). */
export type MemoryAdapterFactory = AdapterFactory & {
  /** The unexpired payloads of `model`, copied. */
  live(model: string): AdapterPayload[];
};

export function createMemoryAdapterFactory(
  clockToleranceSeconds: number,
  seed: AdapterSeed = {},
): MemoryAdapterFactory {
  const entries = new Map<string, Entry>();
  for (const [model, payloads] of Object.entries(seed)) {
    for (const [id, payload] of Object.entries(payloads)) {
      entries.set(`${model}:${id}`, { payload: copy(payload), expiresAt: undefined });
    }
  }
  const grantMembers = new Map<string, Set<string>>();
  const userCodes = new Map<string, string>();
  const uids = new Map<string, string>();
  let writes = 0;

  const now = (): number => Date.now();
  const isExpired = (entry: Entry): boolean => entry.expiresAt !== undefined && entry.expiresAt <= now();

  function sweep(): void {
    for (const [key, entry] of entries) {
      if (isExpired(entry)) entries.delete(key);
    }
    for (const [grantId, members] of grantMembers) {
      for (const key of members) {
        if (!entries.has(key)) members.delete(key);
      }
      if (members.size === 0) grantMembers.delete(grantId);
    }
    for (const index of [userCodes, uids]) {
      for (const [value, key] of index) {
        if (!entries.has(key)) index.delete(value);
      }
    }
  }

  function read(key: string | undefined): AdapterPayload | undefined {
    if (key === undefined) return undefined;
    const entry = entries.get(key);
    if (!entry) return undefined;
    if (isExpired(entry)) {
      entries.delete(key);
      return undefined;
    }
    return copy(entry.payload);
  }

  const live = (model: string): AdapterPayload[] => {
    const found: AdapterPayload[] = [];
    for (const [key, entry] of entries) {
      if (key.startsWith(`${model}:`) && !isExpired(entry)) found.push(copy(entry.payload));
    }
    return found;
  };
  const factory = (model: string): Adapter => {
    const keyFor = (id: string): string => `${model}:${id}`;

    return {
      async upsert(id, payload, expiresIn) {
        const key = keyFor(id);
        const expiresAt =
          typeof expiresIn === 'number' ? now() + (expiresIn + clockToleranceSeconds) * 1000 : undefined;
        entries.set(key, { payload: copy(payload), expiresAt });
        if (GRANTABLE.has(model) && payload.grantId) {
          const members = grantMembers.get(payload.grantId) ?? new Set<string>();
          members.add(key);
          grantMembers.set(payload.grantId, members);
        }
        if (payload.userCode) userCodes.set(payload.userCode, key);
        if (model === 'Session' && payload.uid) uids.set(payload.uid, key);
        writes += 1;
        if (writes % SWEEP_EVERY_WRITES === 0) sweep();
      },
      async find(id) {
        return read(keyFor(id));
      },
      async findByUserCode(userCode) {
        return read(userCodes.get(userCode));
      },
      async findByUid(uid) {
        return read(uids.get(uid));
      },
      async consume(id) {
        const entry = entries.get(keyFor(id));
        if (entry) entry.payload.consumed = Math.floor(now() / 1000);
      },
      async destroy(id) {
        entries.delete(keyFor(id));
      },
      async revokeByGrantId(grantId) {
        for (const key of grantMembers.get(grantId) ?? []) entries.delete(key);
        grantMembers.delete(grantId);
      },
    };
  };
  return Object.assign(factory, { live });
}
