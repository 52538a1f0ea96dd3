/**
 * The one map from a key to its JWS algorithm (RFC 7518 §3): client assertions and DPoP proofs
 * both sign with keys whose algorithm is not always given.
 */
import type { JWK } from 'jose';

/** The JWS algorithm of each EC curve (RFC 7518 §3.4). */
const EC_ALGORITHMS = new Map([
  ['P-256', 'ES256'],
  ['P-384', 'ES384'],
  ['P-521', 'ES512'],
]);

/** The JWS algorithm a CryptoKey signs with, or `undefined` for a key that cannot sign a JWS. */
export function jwsAlgorithmOf(key: CryptoKey): string | undefined {
  const algorithm = key.algorithm as { name: string; namedCurve?: string; hash?: { name: string } };
  const bits = algorithm.hash?.name.replace('SHA-', '') ?? '256';
  switch (algorithm.name) {
    case 'RSASSA-PKCS1-v1_5':
      return `RS${bits}`;
    case 'RSA-PSS':
      return `PS${bits}`;
    case 'ECDSA':
      return EC_ALGORITHMS.get(algorithm.namedCurve ?? '');
    case 'Ed25519':
      return 'EdDSA';
    default:
      return undefined;
  }
}

/** The JWS algorithm a JWK without `alg` most likely signs with, or `undefined` when it cannot tell. */
export function jwsAlgorithmOfJwk(jwk: JWK): string | undefined {
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'OKP') return jwk.crv === 'Ed25519' || jwk.crv === undefined ? 'EdDSA' : undefined;
  if (jwk.kty === 'EC') return EC_ALGORITHMS.get(jwk.crv ?? '');
  return undefined;
}
