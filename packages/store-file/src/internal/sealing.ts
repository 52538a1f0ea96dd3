/**
 * How a token set is kept on disk: a compact JWE (RFC 7516 §7.1) with `alg: dir` and `enc: A256GCM`
 * (RFC 7518 §4.5, §5.3), its key id and the set's version in the protected header (authenticated,
 * and readable without decrypting); or, with `plaintext: true`, the same envelope as JSON.
 */
import { createHash, createSecretKey, randomBytes, scrypt, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';

/** What one file holds: the key it belongs to, the set's version, and the token set. */
export interface Envelope {
  key: string;
  version: number;
  tokens: unknown;
}

/** Why a file could not be opened; the store turns it into a `TokenStoreError`. */
export class SealError extends Error {
  override readonly name = 'SealError';
}

/** Seals and opens envelopes, encrypted or not. */
export interface Sealer {
  /** The key id written in (and expected from) every file; `undefined` in plaintext mode. */
  readonly kid: string | undefined;
  seal(envelope: Envelope): Promise<string>;
  open(text: string): Promise<Envelope>;
  /** The version a file claims, without decrypting it (0 for no file). */
  versionOf(text: string): number;
}

/** The scrypt cost (RFC 7914): N = 2^15, r = 8, p = 1, about 32 MiB and 0.1 s, once per store. */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const KEY_BYTES = 32;

/** A random salt for a passphrase, hex. */
export function newSalt(): string {
  return randomBytes(16).toString('hex');
}

/** The store key derived from a passphrase and the directory's salt. */
export function deriveKey(passphrase: string, salt: string): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), Buffer.from(salt, 'hex'), KEY_BYTES, SCRYPT, (error, key) =>
      error ? reject(error) : resolve(createSecretKey(key)),
    );
  });
}

/**
 * The 32-byte key of `encryptionKey` (bytes, base64url of 32 bytes, or a secret KeyObject), or an
 * explanation of why it is not one (never quoting it).
 */
export function keyFrom(encryptionKey: unknown): KeyObject | string {
  let bytes: Buffer | undefined;
  if (encryptionKey instanceof Uint8Array) bytes = Buffer.from(encryptionKey);
  else if (typeof encryptionKey === 'string') {
    if (!/^[A-Za-z0-9_-]+$/.test(encryptionKey)) return 'must be base64url (of 32 bytes)';
    bytes = Buffer.from(encryptionKey, 'base64url');
  } else if (isKeyObject(encryptionKey)) {
    if (encryptionKey.type !== 'secret')
      return 'must be a secret KeyObject (createSecretKey), not an asymmetric key';
    bytes = encryptionKey.export();
  } else return 'must be a Uint8Array of 32 bytes, their base64url, or a secret KeyObject';
  if (bytes.length !== KEY_BYTES) return `must be 32 bytes (A256GCM), got ${bytes.length}`;
  return createSecretKey(bytes);
}

function isKeyObject(value: unknown): value is KeyObject {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as KeyObject).export === 'function' &&
    'type' in value
  );
}

/**
 * A JWE sealer for `key`: its key id is a short hash of the key (it tells keys apart, nothing more).
 * The key is imported into WebCrypto once, not on every seal and open.
 */
export async function encryptingSealer(secret: KeyObject): Promise<Sealer> {
  const raw = secret.export();
  const kid = `tessera-${createHash('sha256').update(raw).digest('base64url').slice(0, 16)}`;
  const key = await webcrypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return {
    kid,
    seal: (envelope) =>
      new CompactEncrypt(Buffer.from(JSON.stringify({ key: envelope.key, tokens: envelope.tokens })))
        .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid, ver: envelope.version })
        .encrypt(key),
    open: async (text) => {
      if (text.startsWith('{')) throw new SealError('is not encrypted, but this store has an encryption key');
      const header = protectedHeader(text);
      if (header.kid !== kid) {
        throw new SealError(
          `was encrypted with another key (kid ${JSON.stringify(header.kid ?? null).slice(0, 40)}; this store's key is ${kid})`,
        );
      }
      let plaintext: Uint8Array;
      try {
        ({ plaintext } = await compactDecrypt(text, key, {
          keyManagementAlgorithms: ['dir'],
          contentEncryptionAlgorithms: ['A256GCM'],
        }));
      } catch {
        throw new SealError('cannot be decrypted: it was changed or damaged');
      }
      const body = parse(Buffer.from(plaintext).toString('utf8'));
      return { key: body.key, tokens: body.tokens, version: versionIn(header.ver) };
    },
    versionOf: (text) => (text.startsWith('{') ? 0 : versionIn(protectedHeader(text).ver)),
  };
}

/** The plaintext sealer: the envelope as JSON. */
export const plaintextSealer: Sealer = {
  kid: undefined,
  seal: async (envelope) => JSON.stringify(envelope),
  open: async (text) => {
    if (!text.startsWith('{'))
      throw new SealError('is encrypted, but this store was opened with plaintext: true');
    const body = parse(text);
    return { key: body.key, tokens: body.tokens, version: versionIn(body.version) };
  },
  versionOf: (text) => {
    if (!text.startsWith('{')) return 0;
    try {
      return versionIn((JSON.parse(text) as { version?: unknown }).version);
    } catch {
      return 0;
    }
  },
};

function protectedHeader(text: string): Record<string, unknown> {
  try {
    return decodeProtectedHeader(text) as Record<string, unknown>;
  } catch {
    throw new SealError('is not a token file (neither JWE nor JSON)');
  }
}

function parse(text: string): { key: string; tokens: unknown; version?: unknown } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new SealError('is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || typeof (body as { key?: unknown }).key !== 'string') {
    throw new SealError('is not a token file');
  }
  return body as { key: string; tokens: unknown; version?: unknown };
}

function versionIn(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new SealError('has no valid version');
  }
  return value;
}
