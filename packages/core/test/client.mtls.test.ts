/**
 * Mutual TLS client authentication (RFC 8705 §2) and endpoint aliases (§5), against a local
 * node:https server that requires a client certificate.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Client } from '@tessera/core';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/tls/${name}`, import.meta.url));
const ca = fixture('ca.crt');

interface Seen {
  path: string;
  certificateSubject: string | undefined;
  form: URLSearchParams;
  authorization: string | undefined;
}

let server: https.Server;
let base: string;
const seen: Seen[] = [];

beforeAll(async () => {
  server = https.createServer(
    {
      key: fixture('server.key'),
      cert: fixture('server.crt'),
      ca,
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const socket = req.socket as TLSSocket;
        const peer = socket.authorized ? socket.getPeerCertificate() : undefined;
        seen.push({
          path: req.url ?? '',
          certificateSubject: [peer?.subject?.CN].flat()[0],
          form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
          authorization: req.headers.authorization,
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'at', token_type: 'Bearer', expires_in: 60 }));
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);

const metadata = () => ({
  issuer: base,
  token_endpoint: `${base}/token`,
  token_endpoint_auth_methods_supported: ['tls_client_auth', 'client_secret_basic'],
  mtls_endpoint_aliases: { token_endpoint: `${base}/mtls/token` },
});

describe('tls_client_auth', () => {
  it('presents the client certificate at the mTLS alias and sends only client_id', async () => {
    const client = new Client(
      metadata(),
      { client_id: 'mtls-client' },
      { tls: { cert: fixture('client.crt'), key: fixture('client.key'), ca } },
    );
    expect(client.authMethod).toBe('tls_client_auth');
    await client.clientCredentialsGrant();
    const request = seen.at(-1)!;
    expect(request.path).toBe('/mtls/token');
    expect(request.certificateSubject).toBe('mtls-client');
    expect(Object.fromEntries(request.form)).toEqual({
      grant_type: 'client_credentials',
      client_id: 'mtls-client',
    });
    expect(request.authorization).toBeUndefined();
  });

  it('a client that does not use mTLS ignores the aliases', async () => {
    const client = new Client(metadata(), { client_id: 'c', client_secret: 's' }, { tls: { ca } });
    expect(client.authMethod).toBe('client_secret_basic');
    await client.clientCredentialsGrant();
    expect(seen.at(-1)).toMatchObject({ path: '/token', certificateSubject: undefined });
  });

  it('an untrusted server certificate is a NETWORK_ERROR', async () => {
    const client = new Client(metadata(), { client_id: 'c', client_secret: 's' }, { retry: { retries: 0 } });
    await expect(client.clientCredentialsGrant()).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
  });
});
