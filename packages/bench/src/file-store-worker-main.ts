/**
 * Entry point of one process of the file-store suite's fleet (see `suites/file-store.ts`): a
 * `FileTokenStore` on the directory the fleet shares. It discovers the authorization server, says
 * "ready", then for each "go" makes a TokenManager on the round's key, `calls` concurrent
 * `getValidAccessToken()` calls, and reports what it got (token fingerprints, never tokens) and
 * the renewal events it saw. It exits when the parent goes away.
 */
import { createHash } from 'node:crypto';
import { Client, TokenManager } from '@tessera/core';
import type { ClientMetadata } from '@tessera/core';
import { FileTokenStore } from '@tessera/store-file';

/** What the parent passes in `argv[2]`, as JSON. */
export interface FleetWorkerConfig {
  issuer: string;
  client: ClientMetadata;
  directory: string;
  /** base64url of the store's 32-byte encryption key. */
  encryptionKey: string;
}

/** Messages the parent sends. */
export type FleetParentMessage = { type: 'go'; key: string; calls: number } | { type: 'stop' };

/** Messages this process sends. */
export type FleetWorkerMessage =
  | { type: 'ready' }
  | {
      type: 'done';
      key: string;
      /** The distinct tokens handed out, as short SHA-256 fingerprints. */
      fingerprints: string[];
      /** The error codes of the calls that rejected. */
      rejected: string[];
      /** How often each renewal event was emitted, by name. */
      events: Record<string, number>;
    };

const EVENTS = ['token.refreshed', 'refresh.failed', 'token.cleared', 'store.failed'] as const;

const config = JSON.parse(process.argv[2]!) as FleetWorkerConfig;
const send = (message: FleetWorkerMessage): void => void process.send?.(message);
const fingerprint = (token: string): string => createHash('sha256').update(token).digest('hex').slice(0, 12);

const client = await Client.discover(config.issuer, config.client);
const store = new FileTokenStore({ directory: config.directory, encryptionKey: config.encryptionKey });

async function round(key: string, calls: number): Promise<void> {
  const manager = new TokenManager({ client, store, key });
  const events: Record<string, number> = {};
  for (const name of EVENTS) manager.on(name, () => void (events[name] = (events[name] ?? 0) + 1));
  try {
    const results = await Promise.allSettled(
      Array.from({ length: calls }, () => manager.getValidAccessToken()),
    );
    send({
      type: 'done',
      key,
      fingerprints: [
        ...new Set(results.flatMap((r) => (r.status === 'fulfilled' ? [fingerprint(r.value)] : []))),
      ],
      rejected: results.flatMap((r) =>
        r.status === 'rejected' ? [String((r.reason as { code?: string }).code)] : [],
      ),
      events,
    });
  } finally {
    await manager.close();
  }
}

async function stop(): Promise<void> {
  await store.close();
  process.exit(0);
}

process.on('message', (message: FleetParentMessage) => {
  if (message.type !== 'go') return void stop();
  round(message.key, message.calls).catch((error: unknown) =>
    send({
      type: 'done',
      key: message.key,
      fingerprints: [],
      rejected: [`worker: ${String(error)}`],
      events: {},
    }),
  );
});
process.once('disconnect', () => void stop());
send({ type: 'ready' });
