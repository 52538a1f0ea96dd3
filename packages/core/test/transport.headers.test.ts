/**
 * What goes on the wire: the request line and headers a server receives from each transport
 * (node:http, which gets a raw header list, and a caller's axios instance), for IPv4 and IPv6
 * hosts, with the client's default headers and the request's own.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import { Client } from '@tessera/core';
import type { ClientOptions } from '@tessera/core';

/** One request as the server read it: the request line and the raw header lines, in order. */
interface Seen {
  line: string;
  headers: Array<[string, string]>;
  body: string;
}

const seen: Seen[] = [];
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();

/** A server that records each request's raw head and answers a fixed token response. */
async function listen(host: string): Promise<number | undefined> {
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [line, ...lines] = buffered.slice(0, end).split('\r\n');
      const headers = lines.map((l) => {
        const colon = l.indexOf(':');
        return [l.slice(0, colon).toLowerCase(), l.slice(colon + 1).trim()] as [string, string];
      });
      const length = Number(headers.find(([name]) => name === 'content-length')?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      seen.push({ line: line!, headers, body: buffered.slice(end + 4, end + 4 + length) });
      buffered = buffered.slice(end + 4 + length);
      const body = '{"access_token":"at-0123456789","token_type":"Bearer","expires_in":60}';
      socket.write(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
    });
  });
  servers.push(server);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, resolve);
    });
  } catch {
    return undefined; // no IPv6 loopback on this machine
  }
  return (server.address() as AddressInfo).port;
}

let ipv4 = 0;
let ipv6: number | undefined;

beforeAll(async () => {
  ipv4 = (await listen('127.0.0.1'))!;
  ipv6 = await listen('::1');
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function grant(base: string, options: ClientOptions): Promise<Seen> {
  const client = new Client(
    { issuer: base, token_endpoint: `${base}/oauth/token?tenant=a` },
    { client_id: 'c1', client_secret: 's1', token_endpoint_auth_method: 'client_secret_basic' },
    options,
  );
  seen.length = 0;
  await client.clientCredentialsGrant({ scope: 'api' });
  expect(seen).toHaveLength(1);
  return seen[0]!;
}

/** Every value of `name`, in order. */
function values(request: Seen, name: string): string[] {
  return request.headers.filter(([n]) => n === name).map(([, v]) => v);
}

describe.each([
  ['node:http', (): ClientOptions => ({})],
  ['a caller-supplied axios instance', (): ClientOptions => ({ axios: axios.create() })],
])('the request on the wire, through %s', (_name, transport) => {
  it('has the request line, Host with the port, the defaults and a body of the length it says', async () => {
    const request = await grant(`http://127.0.0.1:${ipv4}`, transport());
    expect(request.line).toBe('POST /oauth/token?tenant=a HTTP/1.1');
    expect(values(request, 'host')).toEqual([`127.0.0.1:${ipv4}`]);
    expect(values(request, 'user-agent')).toEqual(['tessera']);
    expect(values(request, 'accept')).toEqual(['application/json']);
    expect(values(request, 'content-type')).toEqual(['application/x-www-form-urlencoded;charset=UTF-8']);
    expect(values(request, 'authorization')).toEqual([`Basic ${Buffer.from('c1:s1').toString('base64')}`]);
    expect(values(request, 'content-length')).toEqual([String(Buffer.byteLength(request.body))]);
    expect(new URLSearchParams(request.body).get('grant_type')).toBe('client_credentials');
  });

  it("sends each of the caller's headers once, lower-cased, and lets them replace a default", async () => {
    const request = await grant(`http://127.0.0.1:${ipv4}`, {
      ...transport(),
      headers: { 'X-Trace': 't-1', 'User-Agent': 'billing/2.1' },
    });
    expect(values(request, 'x-trace')).toEqual(['t-1']);
    expect(values(request, 'user-agent')).toEqual(['billing/2.1']);
    const names = request.headers.map(([name]) => name);
    expect(new Set(names).size).toBe(names.length);
  });

  it('puts an IPv6 host in brackets in Host', async () => {
    if (ipv6 === undefined) return; // no IPv6 loopback here
    const request = await grant(`http://[::1]:${ipv6}`, transport());
    expect(values(request, 'host')).toEqual([`[::1]:${ipv6}`]);
  });
});

it("node:http sends a caller's own Host instead of the URL's", async () => {
  const request = await grant(`http://127.0.0.1:${ipv4}`, { headers: { Host: 'as.internal' } });
  expect(values(request, 'host')).toEqual(['as.internal']);
});
