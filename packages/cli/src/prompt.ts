import { StringDecoder } from 'node:string_decoder';
import { InterruptedError } from './exit-codes.js';
import type { Io } from './io.js';

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = new Set(['\u007f', '\b']);

/**
 * Asks for a secret on the terminal: the prompt on stderr, the answer read from stdin in raw mode
 * and never echoed. Enter ends it; Backspace takes back a character; Ctrl-C rejects with
 * {@link InterruptedError}, as does `signal` (SIGTERM); Ctrl-D (or the end of input) ends it as
 * Enter does.
 */
export function readPassphrase(io: Io, prompt: string, signal?: AbortSignal): Promise<string> {
  const { stdin, stderr } = io;
  return new Promise((resolve, reject) => {
    let answer = '';
    // Characters may arrive split across chunks: decode the bytes as one stream.
    const decoder = new StringDecoder('utf8');
    const onAbort = (): void => finish(new InterruptedError());
    const finish = (error?: Error): void => {
      signal?.removeEventListener('abort', onAbort);
      stdin.removeListener('data', onData);
      stdin.removeListener('end', onEnd);
      stdin.setRawMode?.(false);
      stdin.pause();
      stderr.write('\n');
      if (error === undefined) resolve(answer);
      else reject(error);
    };
    const onEnd = (): void => finish();
    const onData = (chunk: Buffer | string): void => {
      for (const char of typeof chunk === 'string' ? chunk : decoder.write(chunk)) {
        if (char === CTRL_C) return finish(new InterruptedError());
        if (char === '\r' || char === '\n' || char === CTRL_D) return finish();
        if (BACKSPACE.has(char)) answer = [...answer].slice(0, -1).join('');
        else answer += char;
      }
    };
    if (signal?.aborted === true) return reject(new InterruptedError());
    signal?.addEventListener('abort', onAbort);
    // Echo off before the prompt shows: an answer typed as soon as the prompt appears must not
    // reach the terminal's line discipline while it still echoes.
    stdin.setRawMode?.(true);
    stderr.write(prompt);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}
