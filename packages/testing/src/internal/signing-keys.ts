import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

/** A JSON Web Key Set holding private keys. */
export interface PrivateJwks {
  keys: JWK[];
}

/** Generates the private key material (no `kid`) of a new key pair for `alg`. */
async function generateKeyMaterial(alg: 'RS256' | 'ES256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return exportJWK(privateKey);
}

/**
 * Generates a private JWK (with a fresh `kid`, `alg` and `use: 'sig'`) for the given signature
 * algorithm.
 */
export async function generatePrivateJwk(alg: 'RS256' | 'ES256'): Promise<JWK> {
  return { ...(await generateKeyMaterial(alg)), kid: randomUUID(), alg, use: 'sig' };
}

/**
 * RSA key material shared by the test servers of one process. Generating a 2048-bit RSA key takes
 * 0.4 - 1.5 s, which would dominate every server start; each server still gets its own `kid`, so a
 * token of one server does not resolve a key in another server's JWKS.
 */
let sharedRsaKeyMaterial: Promise<JWK> | undefined;

function rsaKeyMaterial(): Promise<JWK> {
  sharedRsaKeyMaterial ??= generateKeyMaterial('RS256').catch((error: unknown) => {
    sharedRsaKeyMaterial = undefined;
    throw error;
  });
  return sharedRsaKeyMaterial;
}

/**
 * Creates the signing keys of one test server: an RS256 key (the default for ID tokens, JWT access
 * tokens and JWT introspection responses) and an ES256 key, each with a fresh `kid`. The ES256 key is
 * new; the RSA key material is generated once per process (see {@link sharedRsaKeyMaterial}). The
 * server publishes their public halves at its `jwks_uri`.
 */
export async function generateServerSigningKeys(): Promise<PrivateJwks> {
  const [rsa, ec] = await Promise.all([rsaKeyMaterial(), generatePrivateJwk('ES256')]);
  return { keys: [{ ...rsa, kid: randomUUID(), alg: 'RS256', use: 'sig' }, ec] };
}
