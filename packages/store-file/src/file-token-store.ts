import { createHash, randomInt } from 'node:crypto';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { join, resolve } from 'node:path';
import { ConfigurationError, TokenStoreError, freezeTokenSet } from '@tessera/core';
import type { StoreLock, TokenSet, TokenStore, TokenStoreOperation, VersionedTokenSet } from '@tessera/core';
import {
  TEMP_FILE,
  createExclusive,
  isAlive,
  isStale,
  newHolder,
  readHolder,
  removeIfHeldBy,
  tempPathFor,
} from './internal/exclusive-file.js';
import {
  SealError,
  deriveKey,
  encryptingSealer,
  keyFrom,
  newSalt,
  plaintextSealer,
} from './internal/sealing.js';
import type { Envelope, Sealer } from './internal/sealing.js';

/** Options of a {@link FileTokenStore}: a directory, and exactly one of the three ways to keep it. */
export interface FileTokenStoreOptions {
  /** The store's directory: created with mode 0700 on first use; refused if group- or world-writable or another user's. */
  directory: string;
  /** The AES-256-GCM key: 32 bytes, their base64url, or a secret `KeyObject`. */
  encryptionKey?: Uint8Array | string | KeyObject;
  /** Or a passphrase: the key is derived once (scrypt), with a random salt kept in the directory. */
  passphrase?: string;
  /** Or no encryption, explicitly (tests, or containers whose secrets are protected elsewhere). */
  plaintext?: true;
  /**
   * Offer `subscribe()` through `fs.watch`, so managers in other processes drop their near-cache
   * entry when a key changes. Turn it off where the file system cannot watch (some network file
   * systems); the manager then reads the store every time.
   * @default true on Linux, macOS and Windows
   */
  watch?: boolean;
}

/** A file change listener of `subscribe()`. */
interface ChangeListener {
  onChange: (key: string) => void;
  onReset?: (() => void) | undefined;
}

/** How long a write's guard may be held before others take it over (a process died in a write). */
const GUARD_TTL_MS = 10_000;
/** How old a guard file with no holder in it must be to count as its writer's leftover. */
const EMPTY_GUARD_MS = 1_000;
/** How long a write waits for another process's write of the same key. */
const GUARD_WAIT_MS = 5_000;
/** The longest a lock waiter sleeps between looks, even when it can watch the directory. */
const MAX_WAIT_STEP_MS = 200;
const TOKEN_FILE = /^([0-9a-f]{64})\.token$/;
const WATCHABLE = ['linux', 'darwin', 'win32'].includes(process.platform);

/**
 * A {@link TokenStore} in a directory, for one host: command-line tools, agents, cron jobs, and
 * several processes of one service (the cluster module, PM2) that share tokens without a Redis.
 *
 * - **Encrypted at rest**: each token set is a compact JWE (`dir` + `A256GCM`) with the key id in
 *   its protected header, so a wrong key or a changed file is a `TokenStoreError` saying so, never
 *   garbage and never "no tokens".
 * - **One file per key**, named by a SHA-256 of the key (a key may be an email: it never shows in
 *   a listing), mode 0600, in a directory of mode 0700.
 * - **Crash-safe**: a write goes to a temp file that is fsync'd and renamed over the old one, then
 *   the directory is fsync'd: a process killed at any instant leaves the old or the new token set.
 *   Temp files of processes that died are removed when the store opens.
 * - **Shared by processes**: `lock()` is a lock file created exclusively with the holder's pid,
 *   host and expiry (a dead or expired holder is taken over); writes are compare-and-set
 *   (`getVersioned` / `setIfVersion`); `subscribe()` watches the directory.
 *
 * Nothing touches the disk until the first call. Errors never carry a token value or the key.
 *
 * @example
 * ```ts
 * const store = new FileTokenStore({
 *   directory: join(homedir(), '.config', 'my-cli', 'tokens'),
 *   encryptionKey: process.env.TOKEN_STORE_KEY!, // base64url of 32 random bytes
 * });
 * const manager = new TokenManager({ client, store });
 * // ...
 * await manager.close();
 * await store.close();
 * ```
 */
export class FileTokenStore implements TokenStore {
  /** The store's directory, resolved. */
  readonly directory: string;
  /**
   * The change feed through `fs.watch`: `listener(key)` after any process writes or deletes a
   * key; `onReset` when the watcher failed (changes may have been missed). Absent where the
   * platform cannot watch, or with `watch: false`.
   */
  readonly subscribe?: (
    listener: (key: string) => void,
    options?: { onReset?: () => void; onDisconnect?: () => void },
  ) => () => void;
  readonly #options: FileTokenStoreOptions;
  #opened: Promise<Sealer> | undefined;
  #closed = false;
  /** The key of each file name this store has seen, for change notifications. */
  readonly #keys = new Map<string, string>();
  readonly #listeners = new Set<ChangeListener>();
  readonly #held = new Map<string, () => Promise<void>>();
  readonly #waiters = new Map<string, Set<() => void>>();
  /** The last queued guarded section of each key in this process. */
  readonly #queues = new Map<string, Promise<void>>();
  #watcher: FSWatcher | undefined;
  #directoryHandle: Promise<FileHandle> | undefined;

  /**
   * Checks the options; touches nothing on disk until the first call.
   *
   * @param options - the directory, and exactly one of `encryptionKey`, `passphrase` and `plaintext: true`.
   * @throws ConfigurationError `INVALID_CONFIGURATION` naming the bad option.
   */
  constructor(options: FileTokenStoreOptions) {
    checkOptions(options);
    this.#options = options;
    this.directory = resolve(options.directory);
    if (options.watch ?? WATCHABLE) {
      this.subscribe = (listener, subscribeOptions = {}) => this.#subscribe(listener, subscribeOptions);
    }
  }

  /** The token set of `key`, or `undefined`. */
  async get(key: string): Promise<TokenSet | undefined> {
    return (await this.getVersioned(key))?.tokens;
  }

  /** The token set of `key` with its version, or `undefined`. */
  async getVersioned(key: string): Promise<VersionedTokenSet | undefined> {
    return this.#run('get', async (sealer) => {
      const name = this.#nameOf(key);
      const text = await readIfExists(this.#pathOf(name));
      if (text === undefined) return undefined;
      return this.#unseal(sealer, text, key, 'get');
    });
  }

  /** Writes `tokens` for `key` (crash-safe), replacing what was there. */
  async set(key: string, tokens: TokenSet): Promise<void> {
    await this.#write(key, tokens, undefined);
  }

  /** Writes `tokens` only if the stored version is still `version` (0: absent); `false` on a conflict. */
  async setIfVersion(key: string, tokens: TokenSet, version: number): Promise<boolean> {
    return this.#write(key, tokens, version);
  }

  /** Deletes `key`'s file; resolves for a missing key too. */
  async delete(key: string): Promise<void> {
    await this.#run('delete', async () => {
      const name = this.#nameOf(key);
      await this.#guarded(name, 'delete', async () => {
        await unlink(this.#pathOf(name)).catch(ignoreMissing);
        await this.#syncDirectory();
      });
    });
  }

  /**
   * Takes the lock of `key` for `ttlMs`, waiting up to `waitMs` (both in ms) for its holder to
   * release it, to expire, or to die; rejects with `TokenStoreError` after that. A waiter sleeps
   * until the lock file changes (or a short backoff), never spins.
   */
  async lock(key: string, options: { ttlMs: number; waitMs: number }): Promise<StoreLock> {
    const { ttlMs, waitMs } = options;
    if (!(ttlMs > 0) || !(waitMs >= 0)) {
      throw new TokenStoreError('lock', 'file token store: ttlMs must be positive and waitMs non-negative');
    }
    return this.#run('lock', async () => {
      const name = this.#nameOf(key);
      const path = this.#lockPathOf(name);
      const deadline = Date.now() + waitMs;
      for (let attempt = 0; ; attempt++) {
        this.#checkOpen('lock');
        const holder = newHolder(ttlMs);
        if (await createExclusive(path, holder)) return this.#heldLock(name, path, holder.owner);
        // Listen before looking: a release between the look and the wait must still wake us.
        const change = this.#nextChangeOf(`${name}.lock`);
        try {
          const current = await readHolder(path, ttlMs);
          if (current === undefined) continue; // released meanwhile
          if (isStale(current)) {
            // Taken over under the key's guard: only one waiter removes it, and only that holder's file.
            await this.#guarded(name, 'lock', () => removeIfHeldBy(path, current.owner, ttlMs));
            continue;
          }
          const remainingMs = deadline - Date.now();
          if (remainingMs <= 0) {
            throw new TokenStoreError(
              'lock',
              `file token store: the lock was not acquired within ${waitMs} ms`,
            );
          }
          const untilExpiryMs = Math.max(1, current.expiresAt - Date.now() + 1);
          await change.within(Math.min(remainingMs, untilExpiryMs, backoffMs(attempt)));
        } finally {
          change.cancel();
        }
      }
    });
  }

  /** Stops watching and releases the locks this store holds; later calls reject with `TokenStoreError`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#watcher?.close();
    this.#watcher = undefined;
    for (const waiters of this.#waiters.values()) for (const wake of waiters) wake();
    this.#waiters.clear();
    await Promise.allSettled([...this.#held.values()].map((release) => release()));
    this.#held.clear();
    const directory = this.#directoryHandle;
    this.#directoryHandle = undefined;
    await directory?.then((handle) => handle.close()).catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------------

  /** Opens the store once (directory, salt, stray temp files), then runs `work` with its sealer. */
  async #run<T>(operation: TokenStoreOperation, work: (sealer: Sealer) => Promise<T>): Promise<T> {
    this.#checkOpen(operation);
    try {
      const sealer = await (this.#opened ??= this.#open().catch((error: unknown) => {
        this.#opened = undefined; // the next call tries again (e.g. after the directory was fixed)
        throw error;
      }));
      return await work(sealer);
    } catch (error) {
      if (error instanceof TokenStoreError) throw error;
      throw TokenStoreError.from(operation, error, { store: 'file token store' });
    }
  }

  #checkOpen(operation: TokenStoreOperation): void {
    if (this.#closed) throw new TokenStoreError(operation, 'file token store is closed');
  }

  async #open(): Promise<Sealer> {
    const directory = this.directory;
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const stats = await stat(directory);
    if (!stats.isDirectory())
      throw new TokenStoreError('get', `file token store: ${directory} is not a directory`);
    const uid = process.getuid?.();
    if (uid !== undefined && stats.uid !== uid) {
      throw new TokenStoreError(
        'get',
        `file token store: ${directory} belongs to another user (uid ${stats.uid}); the store's directory must be its own user's`,
      );
    }
    if (process.platform !== 'win32' && (stats.mode & 0o022) !== 0) {
      throw new TokenStoreError(
        'get',
        `file token store: ${directory} is writable by group or others (mode ${(stats.mode & 0o777).toString(8)}); chmod 700 it`,
      );
    }
    await this.#removeStrayTempFiles();
    const { encryptionKey, passphrase } = this.#options;
    if (encryptionKey !== undefined) return encryptingSealer(keyFrom(encryptionKey) as KeyObject);
    if (passphrase !== undefined) return encryptingSealer(await deriveKey(passphrase, await this.#salt()));
    return plaintextSealer;
  }

  /** The directory's salt for passphrases, made once by whichever process comes first. */
  async #salt(): Promise<string> {
    const path = join(this.directory, '.salt');
    const existing = await readIfExists(path);
    if (existing !== undefined && /^[0-9a-f]{32}$/.test(existing.trim())) return existing.trim();
    const salt = newSalt();
    const written = await createFile(path, salt);
    if (written) {
      await this.#syncDirectory();
      return salt;
    }
    const other = (await readIfExists(path))?.trim();
    if (other === undefined || !/^[0-9a-f]{32}$/.test(other)) {
      throw new TokenStoreError(
        'get',
        "file token store: the directory's passphrase salt (.salt) is damaged",
      );
    }
    return other;
  }

  /** Removes temp files whose writer is gone (it died mid-write: the old token set stands). */
  async #removeStrayTempFiles(): Promise<void> {
    for (const file of await readdir(this.directory)) {
      const pid = TEMP_FILE.exec(file)?.[1];
      if (pid !== undefined && !isAlive(Number(pid))) {
        await unlink(join(this.directory, file)).catch(ignoreMissing);
      }
    }
  }

  async #write(key: string, tokens: TokenSet, expectedVersion: number | undefined): Promise<boolean> {
    return this.#run('set', async (sealer) => {
      const name = this.#nameOf(key);
      const path = this.#pathOf(name);
      let body: unknown;
      try {
        body = JSON.parse(JSON.stringify(tokens));
      } catch (cause) {
        throw TokenStoreError.from('set', cause, {
          message: 'file token store: the token set is not plain data',
        });
      }
      return this.#guarded(name, 'set', async () => {
        // A plain write needs no look at the file: its version, from the clock and a random part,
        // differs from the one it replaces, which is all a conditional writer compares.
        const current = expectedVersion === undefined ? undefined : await readIfExists(path);
        let currentVersion = 0;
        if (current !== undefined) {
          try {
            currentVersion = sealer.versionOf(current);
          } catch (error) {
            if (!(error instanceof SealError)) throw error;
            currentVersion = -1; // a damaged file: a plain write replaces it, no conditional one does
          }
        }
        if (expectedVersion !== undefined && currentVersion !== expectedVersion) return false;
        const version = newVersion(currentVersion);
        const sealed = await sealer.seal({ key, version, tokens: body } satisfies Envelope);
        await this.#replace(path, sealed);
        return true;
      });
    });
  }

  /** Temp file, fsync, rename over `path`, fsync of the directory. */
  async #replace(path: string, content: string): Promise<void> {
    const temp = tempPathFor(path);
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    await handle.close();
    try {
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    await this.#syncDirectory();
  }

  /** fsync of the directory, through one handle the store keeps open (closed by `close()`). */
  async #syncDirectory(): Promise<void> {
    if (process.platform === 'win32') return; // directories cannot be opened for fsync there
    if (this.#closed) {
      // A write that was under way when the store closed: no handle to keep.
      const handle = await open(this.directory, 'r');
      await handle.sync().finally(() => handle.close());
      return;
    }
    const opening = (this.#directoryHandle ??= open(this.directory, 'r'));
    try {
      await (await opening).sync();
    } catch (error) {
      if (this.#directoryHandle === opening) this.#directoryHandle = undefined;
      void opening.then((handle) => handle.close()).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Runs `work` holding the key's guard: one writer of a key at a time, across processes. Within
   * this process the writers of a key queue up, so only the first of them waits on the file.
   */
  #guarded<T>(name: string, operation: TokenStoreOperation, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(name);
    const turn = previous === undefined ? Promise.resolve() : previous.then(noop, noop);
    const run = turn.then(() => this.#guardedNow(name, operation, work));
    const settled = run.then(noop, noop);
    this.#queues.set(name, settled);
    void settled.then(() => {
      if (this.#queues.get(name) === settled) this.#queues.delete(name);
    });
    return run;
  }

  async #guardedNow<T>(name: string, operation: TokenStoreOperation, work: () => Promise<T>): Promise<T> {
    const path = join(this.directory, `${name}.guard`);
    const deadline = Date.now() + GUARD_WAIT_MS;
    for (let attempt = 0; !(await createGuard(path)); attempt++) {
      // A guard still empty after a second lost its writer between creating and filling it.
      const current = await readHolder(path, EMPTY_GUARD_MS);
      if (current !== undefined && isStale(current)) {
        await removeIfHeldBy(path, current.owner, EMPTY_GUARD_MS);
      } else if (Date.now() > deadline) {
        throw new TokenStoreError(
          operation,
          `file token store: another process has been writing the key for ${GUARD_WAIT_MS} ms`,
        );
      } else {
        await delay(Math.min(1 + attempt, 10));
      }
    }
    try {
      return await work();
    } finally {
      // Ours until GUARD_TTL_MS has passed: no section of a few writes lasts that long.
      await unlink(path).catch(() => undefined);
    }
  }

  #heldLock(name: string, path: string, owner: string): StoreLock {
    let released: Promise<void> | undefined;
    const release = (): Promise<void> =>
      (released ??= (async () => {
        this.#held.delete(owner);
        try {
          await this.#guarded(name, 'lock', () => removeIfHeldBy(path, owner, 0));
        } catch (error) {
          throw TokenStoreError.from('lock', error, { store: 'file token store' });
        }
      })());
    this.#held.set(owner, release);
    return { release };
  }

  async #unseal(
    sealer: Sealer,
    text: string,
    key: string,
    operation: TokenStoreOperation,
  ): Promise<VersionedTokenSet> {
    let envelope: Envelope;
    try {
      envelope = await sealer.open(text);
    } catch (error) {
      if (error instanceof SealError) {
        throw new TokenStoreError(operation, `file token store: the file of a key ${error.message}`);
      }
      throw error;
    }
    if (envelope.key !== key) {
      throw new TokenStoreError(
        operation,
        "file token store: the file of a key holds another key's token set",
      );
    }
    const tokens = envelope.tokens as TokenSet;
    if (typeof tokens?.accessToken !== 'string' || typeof tokens.tokenType !== 'string') {
      throw new TokenStoreError(operation, 'file token store: the file of a key does not hold a token set');
    }
    return { tokens: freezeTokenSet(tokens), version: envelope.version };
  }

  #nameOf(key: string): string {
    const name = createHash('sha256').update(key, 'utf8').digest('hex');
    if (this.#listeners.size > 0) this.#keys.set(name, key); // a change of it will be announced by key
    return name;
  }

  #pathOf(name: string): string {
    return join(this.directory, `${name}.token`);
  }

  #lockPathOf(name: string): string {
    return join(this.directory, `${name}.lock`);
  }

  // --- the change feed ---------------------------------------------------------------------------

  #subscribe(listener: (key: string) => void, options: { onReset?: () => void }): () => void {
    const entry: ChangeListener = { onChange: listener, onReset: options.onReset };
    this.#listeners.add(entry);
    this.#run('subscribe', async () => this.#ensureWatcher()).catch(() => entry.onReset?.());
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** One watcher of the directory, for the change feed and for lock waiters. */
  #ensureWatcher(): void {
    if (this.#watcher !== undefined || this.#closed || !(this.#options.watch ?? WATCHABLE)) return;
    const watcher = watch(this.directory, { persistent: false }, (_event, file) => {
      if (typeof file !== 'string') return;
      for (const wake of [...(this.#waiters.get(file) ?? [])]) wake();
      const name = TOKEN_FILE.exec(file)?.[1];
      if (name !== undefined && this.#listeners.size > 0) void this.#changed(name);
    });
    watcher.on('error', () => {
      watcher.close();
      if (this.#watcher === watcher) this.#watcher = undefined;
      for (const { onReset } of this.#listeners) safely(() => onReset?.());
      // Watch again: the listeners were told to distrust what they cached meanwhile.
      setTimeout(() => this.#ensureWatcher(), 100).unref();
    });
    this.#watcher = watcher;
  }

  /** Tells the listeners which key changed; a key this store has not seen is read from its file. */
  async #changed(name: string): Promise<void> {
    let key = this.#keys.get(name);
    if (key === undefined) {
      try {
        const text = await readIfExists(this.#pathOf(name));
        const sealer = await this.#opened;
        if (text === undefined || sealer === undefined) return;
        key = (await sealer.open(text)).key;
        this.#keys.set(name, key);
      } catch {
        return; // not readable by this store: not a key it could have cached
      }
    }
    for (const { onChange } of this.#listeners) safely(() => onChange(key));
  }

  /**
   * The next change of `file` in the directory, listened for from now on (watching when possible):
   * `within(ms)` waits for it, or `ms` at most (a timer that keeps the process alive: a caller is
   * waiting); `cancel()` stops listening.
   */
  #nextChangeOf(file: string): { within(ms: number): Promise<void>; cancel(): void } {
    try {
      this.#ensureWatcher();
    } catch {
      // cannot watch here: the wait is a plain backoff
    }
    let waiters = this.#waiters.get(file);
    if (waiters === undefined) this.#waiters.set(file, (waiters = new Set()));
    const set = waiters;
    let changed = false;
    let resolveWait: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const wake = (): void => {
      changed = true;
      clearTimeout(timer);
      set.delete(wake);
      if (set.size === 0 && this.#waiters.get(file) === set) this.#waiters.delete(file);
      resolveWait?.();
    };
    set.add(wake);
    return {
      within: (ms) =>
        new Promise<void>((resolve) => {
          if (changed) return resolve();
          resolveWait = resolve;
          timer = setTimeout(wake, ms);
        }),
      cancel: wake,
    };
  }
}

/**
 * A version for a new write: random in [1, 2^48), so it differs from the one it replaces (all a
 * conditional writer compares) without reading it, across processes.
 */
function newVersion(current: number): number {
  for (;;) {
    const version = randomInt(1, 2 ** 48);
    if (version !== current) return version;
  }
}

/**
 * Takes a guard file: created exclusively with this process's pid and expiry (a reader that finds
 * it still empty judges it by its age); `false` when another writer holds it.
 */
function createGuard(path: string): Promise<boolean> {
  return createFile(path, JSON.stringify(newHolder(GUARD_TTL_MS)), { sync: false });
}

/** The wait between looks at a held lock: 10 ms doubling to {@link MAX_WAIT_STEP_MS}, jittered. */
function backoffMs(attempt: number): number {
  const ceiling = Math.min(MAX_WAIT_STEP_MS, 10 * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Creates `path` with `content` (fsync'd unless told not to) only if it does not exist; `false` if it does. */
async function createFile(path: string, content: string, options: { sync?: boolean } = {}): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(content);
    if (options.sync !== false) await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

function noop(): void {
  // nothing: a queued section runs whatever the one before it did
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function safely(callback: () => void): void {
  try {
    callback();
  } catch {
    // A listener's failure is its own.
  }
}

/**
 * @throws ConfigurationError `INVALID_CONFIGURATION` naming the bad option: a directory, and
 *   exactly one of `encryptionKey`, `passphrase` and `plaintext: true`.
 */
function checkOptions(options: unknown): asserts options is FileTokenStoreOptions {
  const fail = (message: string): never => {
    throw new ConfigurationError('INVALID_CONFIGURATION', `FileTokenStore ${message}`);
  };
  if (typeof options !== 'object' || options === null)
    fail('needs options: { directory, encryptionKey | passphrase | plaintext: true }');
  const {
    directory,
    encryptionKey,
    passphrase,
    plaintext,
    watch: watching,
  } = options as Record<string, unknown>;
  if (typeof directory !== 'string' || directory === '') fail('option directory must be a non-empty path');
  const chosen = [encryptionKey !== undefined, passphrase !== undefined, plaintext !== undefined].filter(
    Boolean,
  ).length;
  if (chosen !== 1) {
    fail(
      `needs exactly one of the options encryptionKey (32 bytes), passphrase, or plaintext: true (got ${chosen === 0 ? 'none' : 'more than one'})`,
    );
  }
  if (plaintext !== undefined && plaintext !== true) fail('option plaintext must be true (or left out)');
  if (passphrase !== undefined && (typeof passphrase !== 'string' || passphrase.length < 8)) {
    fail('option passphrase must be a string of at least 8 characters');
  }
  if (encryptionKey !== undefined) {
    const key = keyFrom(encryptionKey);
    if (typeof key === 'string') fail(`option encryptionKey ${key}`);
  }
  if (watching !== undefined && typeof watching !== 'boolean') fail('option watch must be a boolean');
}
