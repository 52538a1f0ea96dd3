/**
 * Two processes of one service sharing tokens through an encrypted FileTokenStore directory, with
 * no Redis: what one process acquires, stores or refreshes, the other uses.
 *
 * Starts the embedded authorization server (rotating refresh tokens, access tokens that live 4 s),
 * makes a fresh directory and a random 32-byte key, and forks a second copy of itself that gets
 * the key in its environment (never on its command line). Each process prints its manager's events
 * with its label, A or B:
 *
 * 1. A acquires a service token (client credentials); B reads it from the directory, no request.
 * 2. Alice signs in; A stores her tokens; B reads them from the directory.
 * 3. Alice's access token expires; A and B ask for it at the same moment: one of them refreshes
 *    (under the store's lock), the other uses the token it wrote. One refresh for both.
 *
 *   pnpm example examples/file-store.ts
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, TokenManager } from '@tessera/core';
import type { ClientMetadata, TokenManagerEvents } from '@tessera/core';
import { FileTokenStore } from '@tessera/store-file';
import { startTestServer } from '@tessera/testing';

/** What process A tells process B on its command line (the key goes in its environment). */
interface Setup {
  issuer: string;
  client: ClientMetadata;
  directory: string;
  /** When A started, epoch ms: both processes print their times from it. */
  started: number;
}

/** A asks B to do one step; B answers with the fingerprint of the token it got. */
type Step = 'service' | 'alice' | 'refresh';
interface Answer {
  step: Step;
  fingerprint: string;
  refreshed: boolean;
}

/** Renew a token with less than this left (the default, 60 s, is longer than these tokens live). */
const SKEW_SECONDS = 1;
/** A short SHA-256 of a token: safe to print, and equal for equal tokens. */
const fingerprint = (token: string) =>
  `sha256:${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;

if (process.argv[2] === '--second') {
  await runB(JSON.parse(process.argv[3]!) as Setup, process.env.TOKEN_STORE_KEY!);
} else {
  await runA();
}

/** The same manager in both processes: one client, one grant, the store on the shared directory. */
async function openManager(
  setup: Setup,
  encryptionKey: string,
  label: string,
): Promise<{
  manager: TokenManager;
  store: FileTokenStore;
  say: (text: string) => void;
  refreshes: () => number;
}> {
  const elapsed = () => `+${((Date.now() - setup.started) / 1000).toFixed(2)}s`.padStart(7);
  const say = (text: string) => console.log(`${elapsed()} [${label}] ${text}`);
  const client = await Client.discover(setup.issuer, setup.client);
  const store = new FileTokenStore({ directory: setup.directory, encryptionKey });
  const manager = new TokenManager({
    client,
    store,
    grant: { type: 'client_credentials', parameters: { scope: 'api:read' } },
    refreshSkewSeconds: SKEW_SECONDS,
  });
  let refreshes = 0;
  manager.on('token.refreshed', () => void refreshes++);
  // Every event, as it happens. Payloads never contain token values, so they are safe to log.
  const events: Array<keyof TokenManagerEvents> = [
    'token.acquired',
    'token.stored',
    'token.refreshed',
    'refresh.failed',
    'token.expired',
    'token.cleared',
    'store.failed',
  ];
  for (const name of events) {
    manager.on(name, ((payload: Record<string, unknown>) => {
      const fields = Object.entries(payload)
        .map(([k, v]) => `${k}=${k === 'error' ? JSON.stringify(v) : String(v)}`)
        .join(' ');
      say(`event ${name.padEnd(15)} ${fields}`);
    }) as never);
  }
  return { manager, store, say, refreshes: () => refreshes };
}

async function runA(): Promise<void> {
  const started = Date.now();
  const server = await startTestServer({ accessTokenTtlSeconds: 4 });
  const directory = await mkdtemp(join(tmpdir(), 'tessera-file-store-'));
  let second: ChildProcess | undefined;
  try {
    const setup: Setup = {
      issuer: server.issuer,
      client: server.clients.basic,
      directory: join(directory, 'tokens'),
      started,
    };
    const key = randomBytes(32).toString('base64url'); // in production: a secret from your secret store
    const { manager, store, say, refreshes } = await openManager(setup, key, 'A');
    say(`authorization server ${server.issuer}; token store ${setup.directory} (encrypted)`);

    // The second process: a copy of this file, with the key in its environment.
    const child = fork(fileURLToPath(import.meta.url), ['--second', JSON.stringify(setup)], {
      execArgv: ['--conditions=tessera-source', '--import', 'tsx'],
      env: { ...process.env, NODE_OPTIONS: '', TOKEN_STORE_KEY: key },
    });
    second = child;
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
    /** B's next message (its answer to a step; first, that it is ready). */
    const next = () =>
      new Promise<Answer>((resolve, reject) => {
        child.once('message', (message: Answer) => resolve(message));
        void exited.then((code) => reject(new Error(`process B exited (code ${code}) before answering`)));
      });
    const ask = (step: Step): Promise<Answer> => {
      const answer = next();
      child.send(step);
      return answer;
    };
    try {
      await next(); // B is ready

      say('1. getValidAccessToken() for the service (client credentials)');
      const service = fingerprint(await manager.getValidAccessToken());
      say(`service token ${service}`);
      const b1 = await ask('service');
      say(
        `B got the service token ${b1.fingerprint}: ${b1.fingerprint === service ? "A's, read from the directory" : 'another one?!'}`,
      );

      say('2. alice signs in (device flow); A stores her tokens under the key "alice"');
      const alice = manager.for('alice');
      const stored = await alice.storeTokens(
        (await server.issueUserTokens('basic', {
          accountId: 'alice',
          scope: 'openid offline_access api:read',
        })) as never,
      );
      const b2 = await ask('alice');
      const first = fingerprint(stored.accessToken);
      say(
        `B got alice's token ${b2.fingerprint}: ${b2.fingerprint === first ? 'the one A stored' : 'another one?!'}`,
      );

      // Her access token lives 4 s. (Inside its last SKEW_SECONDS a caller still gets it while a
      // renewal runs behind; once it has expired, every caller waits for the renewal.)
      const dueMs = (stored.expiresAt ?? 0) * 1000 - Date.now() + 100;
      say(`3. waiting ${(Math.max(0, dueMs) / 1000).toFixed(1)} s for alice's access token to expire...`);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, dueMs)));
      server.resetStats();
      say("A and B ask for alice's token at the same moment");
      const [b3, mine] = await Promise.all([ask('refresh'), alice.getValidAccessToken()]);
      const a3 = fingerprint(mine);
      const requests = server.stats().token;
      const same = a3 === b3.fingerprint && a3 !== first;
      say(
        `A has ${a3}, B has ${b3.fingerprint}: ${same ? 'the same new token' : 'not the same new token?!'}`,
      );
      const refreshed = [...(refreshes() > 0 ? ['A'] : []), ...(b3.refreshed ? ['B'] : [])];
      if (refreshed.length === 1) {
        const [who] = refreshed;
        say(
          `one refresh for both: ${who} refreshed, ${who === 'A' ? 'B' : 'A'} used the token ${who} stored`,
        );
      } else {
        say(`processes that refreshed: ${refreshed.join(' and ') || 'none'}?!`);
      }
      say(`refresh requests the authorization server received: ${requests}`);

      child.send('exit');
      const code = await exited;
      if (code !== 0 || requests !== 1 || !same || refreshed.length !== 1) process.exitCode = 1;
      say('done.');
    } finally {
      await manager.close();
      await store.close();
    }
  } finally {
    if (second?.exitCode === null) second.kill();
    await server.close();
    await rm(directory, { recursive: true, force: true });
  }
}

async function runB(setup: Setup, encryptionKey: string): Promise<void> {
  const { manager, store, say, refreshes } = await openManager(setup, encryptionKey, 'B');
  const alice = manager.for('alice');
  const steps: Record<Step, () => Promise<string>> = {
    service: () => manager.getValidAccessToken(),
    alice: () => alice.getValidAccessToken(),
    refresh: () => alice.getValidAccessToken(),
  };
  await new Promise<void>((resolve) => {
    process.on('message', (step: Step | 'exit') => {
      if (step === 'exit') return resolve();
      steps[step]().then(
        (token) => {
          say(`${step === 'service' ? 'service' : "alice's"} token ${fingerprint(token)}`);
          const answer: Answer = { step, fingerprint: fingerprint(token), refreshed: refreshes() > 0 };
          process.send!(answer);
        },
        (error: unknown) => {
          say(`${step} failed: ${String(error)}`);
          process.exit(1);
        },
      );
    });
    process.send!('ready');
  });
  await manager.close();
  await store.close();
  process.disconnect();
}
