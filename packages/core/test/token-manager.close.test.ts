import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));

describe('TokenManager.close()', () => {
  it('leaves nothing that keeps Node running (the process exits by itself)', async () => {
    const { code, stdout } = await new Promise<{ code: number | string; stdout: string }>((resolve) => {
      execFile(
        process.execPath,
        [
          '--conditions=tessera-source',
          '--import',
          'tsx',
          'packages/core/test/fixtures/close-leaves-nothing.ts',
        ],
        // If anything kept the event loop alive, the child would run into this kill timeout.
        { cwd: root, timeout: 20_000, killSignal: 'SIGKILL', env: { ...process.env, NODE_OPTIONS: '' } },
        (error, out) => resolve({ code: error ? (error.code ?? error.signal ?? 1) : 0, stdout: out }),
      );
    });
    expect(stdout).toContain('closed');
    expect(code).toBe(0);
  }, 30_000);
});
