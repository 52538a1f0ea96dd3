/**
 * Files that at most one process holds at a time, on one host: the per-key guard around a write
 * (milliseconds) and the refresh lock (`lock()`, up to its TTL).
 *
 * A file is created exclusively with its holder's pid, host and expiry inside (written to a temp
 * file first and hard-linked into place, so nobody ever reads a half-written holder). A holder
 * whose lock expired, or whose process is gone, is stale and may be removed; removing a stale
 * refresh lock happens under the key's guard, so two waiters cannot both take it over.
 */
import { randomUUID } from 'node:crypto';
import { link, open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';

/** What an exclusive file holds. */
export interface Holder {
  /** Random per acquisition: a release removes the file only if it is still this one. */
  owner: string;
  pid: number;
  host: string;
  /** Epoch ms after which the holder has lost it. */
  expiresAt: number;
}

const HOST = hostname();

/** A holder for this process, valid for `ttlMs`. */
export function newHolder(ttlMs: number): Holder {
  return { owner: randomUUID(), pid: process.pid, host: HOST, expiresAt: Date.now() + ttlMs };
}

/** Whether a process of this host is alive (`kill(pid, 0)`: ESRCH means gone, EPERM alive). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `holder` has lost the file: expired, or its process on this host is gone. */
export function isStale(holder: Holder, nowMs = Date.now()): boolean {
  return holder.expiresAt <= nowMs || (holder.host === HOST && !isAlive(holder.pid));
}

/** The temp-file name pattern of this package: `.<anything>.<pid>.<random>.tmp`. */
export const TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]{8,}\.tmp$/;

/** A temp file beside `path`, named so a later open can tell whether its writer is alive. */
export function tempPathFor(path: string): string {
  const base = path.slice(dirname(path).length + 1);
  return join(dirname(path), `.${base}.${process.pid}.${randomUUID().replaceAll('-', '')}.tmp`);
}

/** Creates `path` holding `holder` if nobody holds it; `false` if it exists. */
export async function createExclusive(path: string, holder: Holder): Promise<boolean> {
  const temp = tempPathFor(path);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(JSON.stringify(holder));
  } finally {
    await handle.close();
  }
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/**
 * Who holds `path`: `undefined` when nobody does; a holder that cannot be read (damaged) counts as
 * expired once the file is older than `damagedAfterMs`.
 */
export async function readHolder(path: string, damagedAfterMs: number): Promise<Holder | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const holder = JSON.parse(text) as Holder;
    if (
      typeof holder.owner === 'string' &&
      typeof holder.pid === 'number' &&
      typeof holder.expiresAt === 'number'
    ) {
      return holder;
    }
  } catch {
    // damaged: judged by its age below
  }
  const modifiedMs = await stat(path).then(
    (stats) => stats.mtimeMs,
    () => 0,
  );
  return { owner: `damaged:${modifiedMs}`, pid: 0, host: '', expiresAt: modifiedMs + damagedAfterMs };
}

/** Removes `path` if `owner` still holds it (call under the key's guard). */
export async function removeIfHeldBy(path: string, owner: string, damagedAfterMs: number): Promise<void> {
  const holder = await readHolder(path, damagedAfterMs);
  if (holder?.owner === owner) await unlink(path).catch(() => undefined);
}
