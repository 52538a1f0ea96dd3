/**
 * Turns an `HttpResponse` into a JSON value or the right typed error. One place decides what is an
 * OAuth error, a provider's non-standard error, or a broken response.
 */
import { OAuthError, ResponseError } from '../errors.js';
import type { TesseraError } from '../errors.js';
import type { HttpResponse } from './http.js';
import type { Redactor } from './redact.js';
import { oauthErrorSchema } from './schemas.js';

/**
 * The endpoint that answered, and the redactor of the request's secrets. The caller redacts every
 * error it throws as a whole (`Redactor.redactError`); here only the response body is redacted,
 * before it is truncated, so a secret cut by the truncation cannot leave a piece behind.
 */
export interface ResponseContext {
  endpoint: string;
  /** Where the redactor comes from: built only when an error needs it (see `CallSecrets`). */
  secrets: { readonly redactor: Redactor };
  /** What the SDK knows beyond the response, for the error (e.g. what was tried already). */
  hint?: string;
}

const MAX_BODY_IN_ERROR = 2048;

/** The media type of a response, lower-cased, without parameters. */
export function mediaType(response: HttpResponse): string {
  const value = response.headers['content-type'];
  if (value === undefined) return '';
  const semicolon = value.indexOf(';');
  return (semicolon === -1 ? value : value.slice(0, semicolon)).trim().toLowerCase();
}

/** Deeper JSON than this is refused: no protocol body comes near it, and deep values overflow the stack. */
export const MAX_JSON_DEPTH = 64;

/** What {@link tryJson} returns for a body that nests deeper than {@link MAX_JSON_DEPTH}. */
export const TOO_DEEP: unique symbol = Symbol('too deep');

/**
 * Parses the body as JSON: `undefined` when it is not JSON, {@link TOO_DEEP} when it nests deeper
 * than {@link MAX_JSON_DEPTH} (checked before parsing, so nothing downstream recurses that far).
 */
export function tryJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return undefined;
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) return TOO_DEEP;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Whether `{` / `[` nest deeper than `max` in a JSON text (outside strings). A text with at most
 * `max` of them cannot: counted first (a native search), it spares the character-by-character scan
 * for every ordinary protocol body.
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  if (openersAtMost(text, max)) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Whether `text` holds at most `max` of the characters `{` and `[`, wherever they are. */
function openersAtMost(text: string, max: number): boolean {
  let count = 0;
  for (const opener of ['{', '[']) {
    for (let at = text.indexOf(opener); at !== -1; at = text.indexOf(opener, at + 1)) {
      if (++count > max) return false;
    }
  }
  return true;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The JSON object of a 2xx response. Throws `OAuthError` when the body carries an `error` (some
 * servers send errors with 200, RFC 6749 §5.2 parsing advice), and `ResponseError` when it is not a
 * JSON object. A `{"$data": {...}}` envelope (Edlink) is unwrapped when the expected
 * member is only inside it.
 */
export function jsonObject(
  response: HttpResponse,
  context: ResponseContext,
  expectedMember: string,
): Record<string, unknown> {
  const json = tryJson(response.body);
  if (!isObject(json)) {
    const deep = json === TOO_DEEP ? ` (it nests deeper than ${MAX_JSON_DEPTH} levels)` : '';
    throw new ResponseError(
      'INVALID_RESPONSE',
      `${context.endpoint} response: body is not a JSON object${deep}`,
      { endpoint: context.endpoint, status: response.status, body: bodyText(response, context) },
    );
  }
  if (typeof json.error === 'string') {
    const standard = oauthErrorSchema.safeParse(json);
    if (standard.success) throw oauthError(standard.data, response, context);
  }
  if (!(expectedMember in json) && isObject(json.$data) && expectedMember in json.$data) return json.$data;
  return json;
}

/**
 * The error for a non-2xx response, in this order: an RFC 6749 error body →
 * `OAuthError`; `{"$error": "..."}` or `{"$errors": [...]}` → `ResponseError` `HTTP_ERROR` whose
 * message carries the provider's text; anything else (HTML from a proxy, plain text, a 3xx) →
 * `ResponseError` `HTTP_ERROR` with the status and the (redacted, truncated) body.
 */
export function errorFromResponse(response: HttpResponse, context: ResponseContext): TesseraError {
  const { endpoint } = context;
  const { status } = response;
  const json = tryJson(response.body);
  if (isObject(json)) {
    const standard = oauthErrorSchema.safeParse(json);
    if (standard.success) return oauthError(standard.data, response, context);
    const provider = providerError(json);
    if (provider !== undefined) {
      const code = provider.code === undefined ? '' : ` ${provider.code}`;
      return new ResponseError(
        'HTTP_ERROR',
        `${endpoint} failed (HTTP ${status})${code}: ${provider.message}${hintOf(context)}`,
        {
          endpoint,
          status,
          body: bodyText(response, context),
          providerError: provider,
        },
      );
    }
  }
  const lines = lineFormatError(response.body);
  if (lines !== undefined) return oauthError(lines, response, context);
  const reason = status >= 300 && status < 400 ? ' (redirects are not followed)' : '';
  return new ResponseError(
    'HTTP_ERROR',
    `${endpoint} responded with HTTP ${status}${reason}${hintOf(context)}`,
    {
      endpoint,
      status,
      body: bodyText(response, context),
    },
  );
}

function oauthError(
  fields: { error: string; error_description?: string | undefined; error_uri?: string | undefined },
  response: HttpResponse,
  context: ResponseContext,
): OAuthError {
  const wwwAuthenticate = response.headers['www-authenticate'];
  return new OAuthError({
    error: fields.error,
    endpoint: context.endpoint,
    status: response.status,
    ...(fields.error_description === undefined ? {} : { error_description: fields.error_description }),
    ...(fields.error_uri === undefined ? {} : { error_uri: fields.error_uri }),
    ...(wwwAuthenticate === undefined ? {} : { wwwAuthenticate }),
    ...(context.hint === undefined ? {} : { hint: context.hint }),
  });
}

function hintOf(context: ResponseContext): string {
  return context.hint === undefined ? '' : ` (${context.hint})`;
}

/** Edlink's `{"$error": "..."}` and `{"$request": "...", "$errors": [{code, message}]}`. */
function providerError(
  json: Record<string, unknown>,
): { message: string; code?: string; requestId?: string } | undefined {
  const requestId = typeof json.$request === 'string' ? { requestId: json.$request } : {};
  if (typeof json.$error === 'string') {
    return { message: json.$error, ...requestId };
  }
  if (Array.isArray(json.$errors) && json.$errors.length > 0) {
    const errors = json.$errors.filter(isObject);
    const messages = errors.map((e) => (typeof e.message === 'string' ? e.message : '')).filter(Boolean);
    const code = errors.map((e) => e.code).find((c): c is string => typeof c === 'string');
    return {
      message: messages.join('; ') || 'unknown error',
      ...(code === undefined ? {} : { code }),
      ...requestId,
    };
  }
  return undefined;
}

/** The body as text for an error: redacted first, then cut to {@link MAX_BODY_IN_ERROR} characters. */
function bodyText(response: HttpResponse, context: ResponseContext): string {
  const { redactor } = context.secrets;
  // Enough beyond the cut for any secret that straddles it to be seen whole.
  const windowBytes = (MAX_BODY_IN_ERROR + redactor.maxLength) * 4; // UTF-8: at most 4 bytes a character
  const redacted = redactor.redact(response.body.subarray(0, windowBytes).toString('utf8'));
  const cut = redacted.length > MAX_BODY_IN_ERROR || response.body.length > windowBytes;
  return cut ? `${redacted.slice(0, MAX_BODY_IN_ERROR)}…` : redacted;
}

/**
 * OA4MP's non-JSON error body: `error="server_error"` and `error_description="<URL-encoded>"`, one
 * per line (its token-info grant answers most failures so, with HTTP 500).
 */
function lineFormatError(body: Buffer): { error: string; error_description?: string } | undefined {
  if (body.length === 0 || body.length > 65_536) return undefined;
  const text = body.toString('utf8');
  const value = (name: string): string | undefined => {
    const match = new RegExp(`^\\s*${name}="([^"\\r\\n]*)"\\s*$`, 'm').exec(text);
    if (match === null) return undefined;
    try {
      return decodeURIComponent(match[1]!.replace(/\+/g, ' '));
    } catch {
      return match[1];
    }
  };
  const error = value('error');
  if (error === undefined || error === '') return undefined;
  const description = value('error_description');
  return description === undefined ? { error } : { error, error_description: description };
}
