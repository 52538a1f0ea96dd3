/**
 * Reading the access token from a request (RFC 6750 §2, RFC 9449 §7.1): the `Authorization`
 * header (`Bearer` or `DPoP`, case-insensitive, token68), the `DPoP` proof header, and, only when
 * allowed, the `access_token` query parameter or form field. More than one way of sending a token
 * is a malformed request (RFC 6750 §3.1).
 */
import type { VerificationFailureReason } from '../errors.js';
import type { AttemptScheme } from './challenge.js';

/** Where a token may come from (RFC 6750 §2.1-§2.3, the names of RFC 9728 `bearer_methods_supported`). */
export type BearerMethod = 'header' | 'query' | 'body';

/** Request headers as node:http gives them (lower-cased names), or a fetch `Headers`. */
export type RequestHeaders = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** What {@link TokenVerifier.verifyRequest} reads. */
export interface VerifiableRequest {
  /** The request method, e.g. `GET` (DPoP `htm`). */
  method: string;
  /** The absolute URL the client requested, e.g. `https://api.example/orders?x=1` (DPoP `htu`). */
  url: string;
  /** The request headers. */
  headers: RequestHeaders;
  /**
   * node:http's `rawHeaders`: lets a second `Authorization` header be seen (node keeps only the
   * first in `headers`).
   */
  rawHeaders?: readonly string[];
  /** The parsed form body, for `bearerMethods: ['body']` (RFC 6750 §2.2). */
  body?: unknown;
  /** Scopes this request needs, beyond the verifier's `requiredScopes`. */
  scopes?: readonly string[];
}

/** A failure found before the token is looked at. */
export class CredentialsError extends Error {
  constructor(
    readonly reason: Extract<VerificationFailureReason, 'missing' | 'request' | 'dpop_proof'>,
    message: string,
    readonly scheme: AttemptScheme,
  ) {
    super(message);
  }
}

/** What was sent. */
export interface Credentials {
  token: string;
  scheme: 'Bearer' | 'DPoP';
  proof?: string;
}

const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

function header(headers: RequestHeaders, name: string): string | readonly string[] | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  return record[name] ?? record[Object.keys(record).find((key) => key.toLowerCase() === name) ?? ''];
}

/** The credentials of a request, or a {@link CredentialsError}. */
export function readCredentials(request: VerifiableRequest, methods: readonly BearerMethod[]): Credentials {
  const found: Array<{ token: string; scheme: 'Bearer' | 'DPoP'; where: BearerMethod }> = [];
  const authorization = header(request.headers, 'authorization');
  const raw = request.rawHeaders;
  let authorizations = 0;
  if (raw !== undefined) {
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'authorization') authorizations++;
  }
  if (Array.isArray(authorization) || authorizations > 1) {
    throw new CredentialsError('request', 'more than one Authorization header', 'both');
  }
  if (typeof authorization === 'string' && authorization !== '') {
    const match = /^(\S+) +(\S+) *$/.exec(authorization);
    const scheme = match?.[1]!.toLowerCase();
    if (scheme === 'bearer' || scheme === 'dpop') {
      if (!TOKEN68.test(match![2]!)) {
        throw new CredentialsError('request', 'the Authorization header is malformed', 'both');
      }
      found.push({ token: match![2]!, scheme: scheme === 'dpop' ? 'DPoP' : 'Bearer', where: 'header' });
    } else if (/^(bearer|dpop)(\s|$)/i.test(authorization)) {
      throw new CredentialsError('request', 'the Authorization header is malformed', 'both');
    }
    // another scheme (Basic...) is no authentication information for us (RFC 6750 §3.1)
  }
  const fromQuery = queryToken(request.url);
  if (fromQuery !== undefined) found.push({ token: fromQuery, scheme: 'Bearer', where: 'query' });
  // RFC 6750 §2.2: only a form-encoded body of a request that has one (a JSON body's member is data).
  const body = request.body as { access_token?: unknown } | undefined;
  const contentType = header(request.headers, 'content-type');
  if (
    request.method !== 'GET' &&
    typeof contentType === 'string' &&
    /^application\/x-www-form-urlencoded\s*(;|$)/i.test(contentType) &&
    typeof body === 'object' &&
    body !== null &&
    typeof body.access_token === 'string'
  ) {
    found.push({ token: body.access_token, scheme: 'Bearer', where: 'body' });
  }
  if (found.length > 1)
    throw new CredentialsError('request', 'the token was sent in more than one way', 'both');
  const only = found[0];
  if (only === undefined) throw new CredentialsError('missing', 'an access token is required', 'none');
  if (!methods.includes(only.where)) {
    throw new CredentialsError(
      'request',
      `an access token in the ${only.where === 'query' ? 'query string' : 'request body'} is not accepted: use the Authorization header`,
      'Bearer',
    );
  }
  const proof = header(request.headers, 'dpop');
  if (Array.isArray(proof)) throw new CredentialsError('dpop_proof', 'more than one DPoP header', 'DPoP');
  if (only.scheme === 'DPoP') {
    if (typeof proof !== 'string' || proof === '') {
      throw new CredentialsError('dpop_proof', 'a DPoP proof header is required', 'DPoP');
    }
    return { token: only.token, scheme: 'DPoP', proof: proof as string };
  }
  // A proof next to a Bearer token is ignored (not verified, its jti not recorded).
  return { token: only.token, scheme: 'Bearer' };
}

function queryToken(url: string): string | undefined {
  const start = url.indexOf('?');
  if (start === -1 || !url.includes('access_token', start)) return undefined;
  const end = url.indexOf('#', start);
  return (
    new URLSearchParams(url.slice(start + 1, end === -1 ? undefined : end)).get('access_token') ?? undefined
  );
}
