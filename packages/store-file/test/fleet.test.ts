/**
 * A fleet of processes on one host sharing one FileTokenStore directory refreshes a rotating
 * refresh token exactly once, and survives a process that dies holding the refresh lock (taken
 * over at once: its pid is gone). The shared fleet tests, test-support/fleet.
 */
import { afterAll } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeFleet } from '../../../test-support/fleet/describe-fleet.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-file-fleet-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const encryptionKey = randomBytes(32).toString('base64url');
let directories = 0;

describeFleet('a fleet sharing one directory', () => ({
  kind: 'file',
  directory: join(root, `fleet-${++directories}`),
  encryptionKey,
}));
