/**
 * FileTokenStore runs the TokenStore conformance suite, encrypted and in plaintext, with a second
 * instance on the same directory as the peer (another process's view).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from '@jest/globals';
import { describeTokenStore } from '@tessera/testing';
import { FileTokenStore } from '@tessera/store-file';

const root = mkdtempSync(join(tmpdir(), 'tessera-file-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const encryptionKey = randomBytes(32);
const encrypted = join(root, 'encrypted');
describeTokenStore(
  'FileTokenStore (encrypted)',
  () => new FileTokenStore({ directory: encrypted, encryptionKey }),
  {
    capabilities: ['lock', 'subscribe', 'versioned'],
    peer: () =>
      new FileTokenStore({ directory: encrypted, encryptionKey: encryptionKey.toString('base64url') }),
    breakStore: (store) => store.close(),
  },
);

const plain = join(root, 'plaintext');
describeTokenStore(
  'FileTokenStore (plaintext)',
  () => new FileTokenStore({ directory: plain, plaintext: true }),
  {
    capabilities: ['lock', 'subscribe', 'versioned'],
    peer: () => new FileTokenStore({ directory: plain, plaintext: true }),
    breakStore: (store) => store.close(),
  },
);
