/**
 * The clients the fuzz tests drive against the hostile server: every client authentication method
 * that puts a secret on the wire (or signs with one), the secrets themselves, and the transport
 * options that bound every request.
 */
import axios from 'axios';
import type { AxiosInstance } from 'axios';
import { exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { Client, randomDPoPKeyPair } from '@tessera/core';
import type { ClientAuthMethod, ClientMetadata, ClientOptions, DPoPHandle } from '@tessera/core';
import { afterAll, beforeAll, expect } from '@jest/globals';
import type { CasePlan, SecretSource } from './answer-plans.js';
import { startHostileServer } from './hostile-server.js';
import type { HostileCase, HostileServer } from './hostile-server.js';
import { SuiteWatch, describeError } from './properties.js';
import type { Secret } from './properties.js';

export const CLIENT_ID = 'fuzz-client';
/** Characters that need form-, percent- and JSON-encoding, and enough of them for every window. */
export const CLIENT_SECRET = 'p@ss+w/rd:%~ &=?#é-0123456789abcdef';
export const REFRESH_TOKEN = 'rt/+=?&% é~refresh-9f8e7d6c5b4a3210';
export const ACCESS_TOKEN = 'at:/+?#& é~access-0a1b2c3d4e5f6789';
export const DEVICE_CODE = 'dc&=+/ é~device-13579bdf2468ace0';
export const AUTH_REQ_ID = 'ar%+/=& é~ciba-fedcba9876543210';
export const SUBJECT_TOKEN = 'st?#+/ é~subject-0f1e2d3c4b5a6978';
/** Sent in a header, so only what RFC 6750 §2.1 allows a b64token (a header is not UTF-8). */
export const BEARER_TOKEN = 'bt~+/introspect.bearer_5a4b3c2d1e0f+/==';

export const AUTH_METHODS = [
  'client_secret_basic',
  'client_secret_post',
  'client_secret_jwt',
  'private_key_jwt',
] as const;
export type FuzzAuthMethod = (typeof AUTH_METHODS)[number] & ClientAuthMethod;

/** Small, so a server that never answers costs little; no retries, so one plan answer is one attempt. */
export const TIMEOUT_MS = 300;
export const CLIENT_OPTIONS: ClientOptions = {
  timeoutMs: TIMEOUT_MS,
  retry: { retries: 0 },
  maxResponseBytes: 128 * 1024,
};

/** node:http (the default transport), or the caller's own axios instance (`ClientOptions.axios`). */
export const TRANSPORTS = ['node', 'axios'] as const;
export type FuzzTransport = (typeof TRANSPORTS)[number];

let sharedAxios: AxiosInstance | undefined;

/** Keys made once per test file. */
export interface FuzzKeys {
  privateJwk: JWK;
  dpop: CryptoKeyPair;
}

export async function makeFuzzKeys(): Promise<FuzzKeys> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return {
    privateJwk: { ...(await exportJWK(privateKey)), kid: 'fuzz-key-1', alg: 'ES256' },
    dpop: await randomDPoPKeyPair('ES256'),
  };
}

export function usesSecret(auth: FuzzAuthMethod): boolean {
  return auth !== 'private_key_jwt';
}

/** The secrets a client of `auth` has before any request (the request's own are added from the wire). */
export function configuredSecrets(auth: FuzzAuthMethod): Secret[] {
  return usesSecret(auth) ? [{ name: 'client_secret', value: CLIENT_SECRET }] : [];
}

/** The registration of a client of `auth`. */
export function clientMetadata(auth: FuzzAuthMethod): ClientMetadata {
  return usesSecret(auth)
    ? { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, token_endpoint_auth_method: auth }
    : { client_id: CLIENT_ID, token_endpoint_auth_method: auth };
}

export function clientOptions(auth: FuzzAuthMethod, keys: FuzzKeys, transport: FuzzTransport): ClientOptions {
  return {
    ...CLIENT_OPTIONS,
    ...(auth === 'private_key_jwt' ? { privateKey: keys.privateJwk } : {}),
    ...(transport === 'axios' ? { axios: (sharedAxios ??= axios.create()) } : {}),
  };
}

/** Opens a case on the server and returns it with a client for it. */
export function openCase(
  server: HostileServer,
  plan: CasePlan,
  auth: FuzzAuthMethod,
  keys: FuzzKeys,
  transport: FuzzTransport,
): { fuzzCase: HostileCase; client: Client } {
  const fuzzCase = server.open(
    plan,
    usesSecret(auth) ? { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET } : { clientId: CLIENT_ID },
  );
  return {
    fuzzCase,
    client: new Client(fuzzCase.metadata, clientMetadata(auth), clientOptions(auth, keys, transport)),
  };
}

export function dpopHandle(client: Client, keys: FuzzKeys): DPoPHandle {
  return client.getDPoPHandle(keys.dpop);
}

/** What every authenticated request carries. */
export const CLIENT_SOURCES: SecretSource[] = [
  'client_secret',
  'client_assertion',
  'authorization',
  'basic_credentials',
  'basic_decoded',
  'request_body',
];
/** What a token request carries besides: a DPoP proof. */
export const GRANT_SOURCES: SecretSource[] = [...CLIENT_SOURCES, 'dpop'];

/**
 * One fuzz suite's hostile server and keys, started in `beforeAll`; `afterAll` closes the server and
 * fails the suite when any unhandled rejection was seen meanwhile.
 */
export function useHostileSuite(): {
  readonly server: HostileServer;
  readonly keys: FuzzKeys;
  readonly watch: SuiteWatch;
} {
  let server: HostileServer | undefined;
  let keys: FuzzKeys | undefined;
  let watch: SuiteWatch | undefined;
  beforeAll(async () => {
    watch = new SuiteWatch();
    server = await startHostileServer();
    keys = await makeFuzzKeys();
  });
  afterAll(async () => {
    await server?.close();
    watch?.stop();
    expect(watch?.unhandled.map(describeError)).toEqual([]);
  });
  return {
    get server() {
      return server!;
    },
    get keys() {
      return keys!;
    },
    get watch() {
      return watch!;
    },
  };
}
