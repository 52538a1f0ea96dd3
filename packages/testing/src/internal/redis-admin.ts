/**
 * What the Sentinel and Cluster harnesses ask of their nodes: `INFO` fields, online replicas, a
 * probe that a write reaches a replica, and polling until the topology has settled.
 */
import { execFile } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { HOST } from '../redis-server.js';
import { sendRespCommand } from './resp-command.js';

/** Pause between two looks at the topology, in milliseconds. */
const POLL_MS = 50;

/** One field of an `INFO` answer (`name:value` lines). */
export function infoField(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1];
}

/** One section of the node's `INFO` (`''` when it answers otherwise). */
export async function info(port: number, section: string): Promise<string> {
  const reply = await sendRespCommand({ host: HOST, port, timeoutMs: 1_000 }, ['INFO', section]);
  return reply.type === 'bulk' ? (reply.value ?? '') : '';
}

/** How many replicas an `INFO replication` answer lists as online. */
export function onlineReplicas(replication: string): number {
  return (replication.match(/^slave\d+:.*state=online/gm) ?? []).length;
}

/**
 * Whether a write on the node at `port` now reaches a replica: a `SET` of `key` and a `WAIT 1` on
 * one connection (`redis-cli` reading both from its input), which is what a store's durable write
 * needs. A replica listed as online may still be loading what it was sent, or about to resync.
 */
export function writeReachesReplica(redisCli: string, port: number, key: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = execFile(redisCli, ['-h', HOST, '-p', String(port)], { timeout: 5_000 }, (error, stdout) =>
      resolve(!error && stdout.trim().split('\n').pop()?.trim() === '1'),
    );
    child.stdin?.end(`SET ${key} 1\nWAIT 1 500\n`);
  });
}

/**
 * Polls `check` until it returns a value (neither `undefined` nor `false`), or throws after
 * `timeoutMs` with `<who>: <what> did not happen within ...` and the last error `check` threw.
 */
export async function pollUntil<T>(
  who: string,
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : '';
      throw new Error(`${who}: ${what} did not happen within ${timeoutMs} ms${why}`);
    }
    await delay(POLL_MS);
  }
}
