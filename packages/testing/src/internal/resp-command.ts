import { connect } from 'node:net';

/**
 * One RESP2 reply that is not an array: `+OK` (`simple`), `-ERR ...` (`error`), `:1` (`integer`)
 * or `$n` (`bulk`; `value` is `null` for the nil bulk string `$-1`).
 */
export interface RespReply {
  readonly type: 'simple' | 'error' | 'integer' | 'bulk';
  readonly value: string | null;
}

/** Where to send a command, and how long the whole exchange may take. */
export interface RespCommandTarget {
  readonly host: string;
  readonly port: number;
  /** Bound on connecting, sending and reading the reply, in milliseconds. */
  readonly timeoutMs: number;
}

/** RESP2 encoding of a command: an array of bulk strings. */
function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(''));
}

/** The reply at the start of `buffer`, or `undefined` while it is incomplete. */
function parseReply(buffer: Buffer): RespReply | undefined {
  const lineEnd = buffer.indexOf('\r\n');
  if (lineEnd === -1) return undefined;
  const line = buffer.subarray(1, lineEnd).toString('utf8');
  switch (buffer[0]) {
    case 0x2b: // '+'
      return { type: 'simple', value: line };
    case 0x2d: // '-'
      return { type: 'error', value: line };
    case 0x3a: // ':'
      return { type: 'integer', value: line };
    case 0x24: {
      // '$'
      const length = Number(line);
      if (length < 0) return { type: 'bulk', value: null };
      const start = lineEnd + 2;
      if (buffer.length < start + length + 2) return undefined;
      return { type: 'bulk', value: buffer.subarray(start, start + length).toString('utf8') };
    }
    default:
      throw new Error(`unsupported RESP reply type ${JSON.stringify(String.fromCharCode(buffer[0] ?? 0))}`);
  }
}

/**
 * Sends one command to a Redis server over a fresh TCP connection and resolves with its reply, so
 * the harness needs no Redis client library. The connection is closed afterwards.
 *
 * @throws Error when the connection fails (e.g. `ECONNREFUSED`), closes before a whole reply, the
 * reply is an array, or `timeoutMs` passes.
 */
export function sendRespCommand(target: RespCommandTarget, args: readonly string[]): Promise<RespReply> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const socket = connect({ host: target.host, port: target.port });
    const finish = (error: Error | undefined, reply?: RespReply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(reply as RespReply);
    };
    const timer = setTimeout(() => {
      finish(
        new Error(`${target.host}:${target.port} did not answer ${args[0]} within ${target.timeoutMs} ms`),
      );
    }, target.timeoutMs);
    socket.once('error', (error) => finish(error));
    socket.once('close', () => {
      finish(new Error(`${target.host}:${target.port} closed the connection before answering ${args[0]}`));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      try {
        const reply = parseReply(received);
        if (reply) finish(undefined, reply);
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.write(encodeCommand(args));
  });
}
