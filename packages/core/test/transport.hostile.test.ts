/**
 * The transport against servers that answer what no real authorization server does, at the socket
 * level: 1xx answers, protocol switches, sockets closed without a response. Whatever they do, every
 * call settles within `timeoutMs` with a typed error.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import { Client, ResponseError, TesseraError, TransportError } from '@tessera/core';
import { rejection } from './support/test-helpers.js';

/** What the raw server writes once it has read a request: HTTP/1.1 bytes, or `null` to stay silent. */
type RawAnswer = (socket: net.Socket) => void;

let server: net.Server;
let port = 0;
const answers = new Map<string, RawAnswer>();
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let seen = '';
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1');
      const path = /^[A-Z]+ (\S+) HTTP/.exec(seen)?.[1];
      if (path === undefined || !seen.includes('\r\n\r\n')) return;
      const answer = answers.get(path);
      seen = '';
      answer?.(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const TIMEOUT_MS = 200;
let route = 0;

function clientFor(answer: RawAnswer, options: ConstructorParameters<typeof Client>[2] = {}): Client {
  const path = `/token-${++route}`;
  answers.set(path, answer);
  const issuer = `http://127.0.0.1:${port}`;
  return new Client(
    { issuer, token_endpoint: `${issuer}${path}` },
    { client_id: 'c1', client_secret: 's3cret-value', token_endpoint_auth_method: 'client_secret_post' },
    { timeoutMs: TIMEOUT_MS, retry: { retries: 0 }, ...options },
  );
}

const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';

describe.each<[string, () => ConstructorParameters<typeof Client>[2]]>([
  ['node:http (the default)', () => ({})],
  ['a caller-supplied axios instance', () => ({ axios: axios.create() })],
])('over %s', (_name, transport) => {
  it('a 101 Switching Protocols settles at once as HTTP_ERROR 101 (regression: it hung forever)', async () => {
    const client = clientFor((socket) => socket.write(SWITCHING), transport());
    const error = await rejection(client.clientCredentialsGrant());
    expect(error).toBeInstanceOf(TesseraError);
    // axios may report the switched connection as a failure of its own instead of a response.
    expect(['HTTP_ERROR', 'NETWORK_ERROR', 'TIMEOUT']).toContain(error.code);
    if (error instanceof ResponseError) expect(error.status).toBe(101);
  });

  it('a 101 followed by silence on the switched socket still ends within timeoutMs', async () => {
    const client = clientFor((socket) => socket.write(`${SWITCHING}garbage`), transport());
    expect(await rejection(client.refreshTokenGrant('rt-1'))).toBeInstanceOf(TesseraError);
  });

  it.each([['102 Processing'], ['103 Early Hints'], ['100 Continue']])(
    'a %s and then nothing → TIMEOUT',
    async (status) => {
      const client = clientFor((socket) => socket.write(`HTTP/1.1 ${status}\r\n\r\n`), transport());
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toBeInstanceOf(TransportError);
      expect(error.code).toBe('TIMEOUT');
    },
  );

  it('1xx answers repeated without end → TIMEOUT', async () => {
    const client = clientFor((socket) => {
      const timer = setInterval(() => {
        if (socket.destroyed) clearInterval(timer);
        else socket.write('HTTP/1.1 102 Processing\r\n\r\n');
      }, 20);
      socket.on('close', () => clearInterval(timer));
    }, transport());
    expect(await rejection(client.clientCredentialsGrant())).toMatchObject({ code: 'TIMEOUT' });
  });

  it('a 1xx then a real answer is read as that answer', async () => {
    const body = JSON.stringify({ access_token: 'at', token_type: 'Bearer', expires_in: 60 });
    const client = clientFor(
      (socket) =>
        socket.write(
          `HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        ),
      transport(),
    );
    await expect(client.clientCredentialsGrant()).resolves.toMatchObject({ access_token: 'at' });
  });

  it('a socket closed after the request, without a byte → NETWORK_ERROR', async () => {
    const client = clientFor((socket) => socket.end(), transport());
    expect(await rejection(client.clientCredentialsGrant())).toMatchObject({ code: 'NETWORK_ERROR' });
  });

  it('a status line with no headers end → TIMEOUT', async () => {
    const client = clientFor(
      (socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n'),
      transport(),
    );
    expect(await rejection(client.clientCredentialsGrant())).toMatchObject({ code: 'TIMEOUT' });
  });
});
