/**
 * The answers a resource server gives (RFC 6750 §3, RFC 9449 §7.1, RFC 9728 §5.1): which status,
 * which `error`, and the `WWW-Authenticate` challenges, built in one place so the verifier and the
 * middleware never disagree.
 */
import { TokenVerificationError } from '../errors.js';
import type { VerificationFailureReason } from '../errors.js';

/** What every challenge of one verifier carries. */
export interface ChallengeSettings {
  realm: string;
  /** RFC 9728 §5.1 `resource_metadata`, when the resource publishes metadata. */
  resourceMetadata: string | undefined;
  /** Whether Bearer tokens are accepted (not with `dpop.required`). */
  bearer: boolean;
  /** The proof algorithms (`algs`), or `undefined` when DPoP is off. */
  dpopAlgorithms: readonly string[] | undefined;
}

/** Which scheme the failed attempt used; `both` when it cannot be told (RFC 9449 §7.2). */
export type AttemptScheme = 'Bearer' | 'DPoP' | 'both' | 'none';

/** `Retry-After` of a 503 when nothing better is known. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** The RFC 6750 §3 `error` and status of each reason. */
const RESPONSES: Record<VerificationFailureReason, { error: string; status: number }> = {
  missing: { error: 'invalid_token', status: 401 },
  request: { error: 'invalid_request', status: 400 },
  malformed: { error: 'invalid_token', status: 401 },
  signature: { error: 'invalid_token', status: 401 },
  unknown_kid: { error: 'invalid_token', status: 401 },
  issuer: { error: 'invalid_token', status: 401 },
  audience: { error: 'invalid_token', status: 401 },
  expired: { error: 'invalid_token', status: 401 },
  inactive: { error: 'invalid_token', status: 401 },
  scope: { error: 'insufficient_scope', status: 403 },
  dpop_proof: { error: 'invalid_dpop_proof', status: 401 },
  dpop_binding: { error: 'invalid_token', status: 401 },
  dpop_nonce: { error: 'use_dpop_nonce', status: 401 },
  unavailable: { error: 'temporarily_unavailable', status: 503 },
};

/** What one failure is. */
export interface Failure {
  reason: VerificationFailureReason;
  /** For people; becomes `error_description` after sanitising (never request or token data). */
  description: string;
  scheme: AttemptScheme;
  /** For `insufficient_scope`: the scopes needed (RFC 6750 §3). */
  scope?: readonly string[];
  retryAfterSeconds?: number;
  dpopNonce?: string;
  cause?: unknown;
}

/** The error for a failure, its challenge ready. */
export function verificationError(settings: ChallengeSettings, given: Failure): TokenVerificationError {
  // Without a Bearer challenge (DPoP required), a Bearer attempt's error goes in the DPoP one.
  const failure: Failure =
    !settings.bearer && given.scheme === 'Bearer' ? { ...given, scheme: 'DPoP' } : given;
  const { error, status } = RESPONSES[failure.reason];
  // 503 always says when to come back (RFC 9110 §10.2.3).
  const retryAfterSeconds =
    failure.retryAfterSeconds ?? (failure.reason === 'unavailable' ? DEFAULT_RETRY_AFTER_SECONDS : undefined);
  const description = sanitize(failure.description);
  // No error information when no authentication was attempted, or when nothing judged the token.
  const judged = failure.reason !== 'missing' && failure.reason !== 'unavailable';
  const params = (scheme: 'Bearer' | 'DPoP'): string[] => {
    const own = failure.scheme === scheme || failure.scheme === 'both';
    const list = [`realm=${quote(settings.realm)}`];
    if (judged && own) {
      list.push(`error="${error}"`, `error_description="${description}"`);
      if (failure.scope !== undefined && failure.scope.length > 0) {
        list.push(`scope="${failure.scope.map(sanitizeScope).join(' ')}"`);
      }
    }
    if (settings.resourceMetadata !== undefined)
      list.push(`resource_metadata=${quote(settings.resourceMetadata)}`);
    if (scheme === 'DPoP') list.push(`algs="${settings.dpopAlgorithms!.join(' ')}"`);
    return list;
  };
  const challenges: string[] = [];
  if (settings.bearer) challenges.push(`Bearer ${params('Bearer').join(', ')}`);
  if (settings.dpopAlgorithms !== undefined) challenges.push(`DPoP ${params('DPoP').join(', ')}`);
  return new TokenVerificationError(
    {
      error,
      error_description: description,
      status,
      endpoint: 'token verifier',
      reason: failure.reason,
      wwwAuthenticate: challenges.join(', '),
      ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
      ...(failure.dpopNonce === undefined ? {} : { dpopNonce: failure.dpopNonce }),
    },
    failure.cause === undefined ? undefined : { cause: failure.cause },
  );
}

/** RFC 6750 §3: `error_description` holds only %x20-21 / %x23-5B / %x5D-7E; `"` becomes `'`. */
function sanitize(text: string): string {
  return text
    .replaceAll('"', "'")
    .replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e']/g, '')
    .slice(0, 200);
}

function sanitizeScope(scope: string): string {
  return scope.replace(/[^\x21\x23-\x5b\x5d-\x7e]/g, '');
}

/** A quoted-string (RFC 9110 §5.6.4); the values were checked for controls when configured. */
function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}
