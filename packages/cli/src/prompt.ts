import { InterruptedError } from './exit-codes.js';
import type { Io } from './io.js';

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = new Set(['\u007f', '\b']);

/**
 * Asks for a secret on the terminal: the prompt on stderr, the answer read from stdin in raw mode
 * and never echoed. Enter ends it; Backspace takes back a character; Ctrl-C rejects with
 * {@link InterruptedError}; Ctrl-D (or the end of input) ends it as Enter does.
 */
export function readPassphrase(io: Io, prompt: string): Promise<string> {
  const { stdin, stderr } = io;
  return new Promise((resolve, reject) => {
    let answer = '';
    const finish = (error?: Error): void => {
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
      for (const char of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (char === CTRL_C) return finish(new InterruptedError());
        if (char === '\r' || char === '\n' || char === CTRL_D) return finish();
        if (BACKSPACE.has(char)) answer = [...answer].slice(0, -1).join('');
        else answer += char;
      }
    };
    stderr.write(prompt);
    stdin.setRawMode?.(true);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}
