import { PassThrough } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import type { Io } from '../src/io.js';
import { readPassphrase } from '../src/prompt.js';
import { InterruptedError } from '../src/exit-codes.js';

/** A terminal that records, in order, when echo goes off and on and what is written. */
function terminal(): { io: Io; stdin: PassThrough; log: string[] } {
  const log: string[] = [];
  const stdin = Object.assign(new PassThrough(), {
    isTTY: true,
    setRawMode: (mode: boolean) => log.push(`raw:${mode}`),
  });
  const stderr = Object.assign(new PassThrough(), { isTTY: true });
  stderr.on('data', (chunk: Buffer) => log.push(`write:${chunk.toString()}`));
  const io: Io = { stdin, stdout: new PassThrough(), stderr, env: {}, onStop: () => () => {} };
  return { io, stdin, log };
}

describe('readPassphrase', () => {
  it('turns echo off before it shows the prompt, so an answer typed at once is not echoed', async () => {
    const { io, stdin, log } = terminal();
    const answer = readPassphrase(io, 'Passphrase: ');
    stdin.write('s3cret pass\r');
    await expect(answer).resolves.toBe('s3cret pass');
    expect(log).toEqual(['raw:true', 'write:Passphrase: ', 'raw:false', 'write:\n']);
  });

  it('takes back characters with Backspace and decodes characters split across chunks', async () => {
    const { io, stdin } = terminal();
    const answer = readPassphrase(io, '> ');
    const euro = Buffer.from('€');
    stdin.write(Buffer.concat([Buffer.from('ab\u007fc'), euro.subarray(0, 1)]));
    stdin.write(Buffer.concat([euro.subarray(1), Buffer.from('\r')]));
    await expect(answer).resolves.toBe('ac€');
  });

  it('rejects with InterruptedError on Ctrl-C and restores the terminal', async () => {
    const { io, stdin, log } = terminal();
    const answer = readPassphrase(io, '> ');
    stdin.write('abc\u0003');
    await expect(answer).rejects.toBeInstanceOf(InterruptedError);
    expect(log.at(-2)).toBe('raw:false');
  });
});
