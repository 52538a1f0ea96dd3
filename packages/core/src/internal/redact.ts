/**
 * Keeps secrets out of every text headed for an error: the one mechanism behind "no secret in any
 * message, field, `toJSON()` or `util.inspect()`". A server may echo what it received in any form,
 * so a {@link Redactor} looks for each secret raw, form-encoded, percent-encoded (either hex case),
 * JSON- and HTML-escaped and base64-encoded, ignoring case, and also for any piece of at least
 * {@link PIECE_LENGTH} characters of those forms (a secret cut by a truncation).
 */
import { formEncode } from './form.js';
import type { HttpRequest } from './http.js';

/** What a secret is replaced with. */
export const REDACTED = '[redacted]';

/**
 * Pieces of a secret this long or longer are redacted wherever they appear: long enough that a
 * random secret's piece never matches ordinary text, short enough to catch a truncated echo.
 */
const PIECE_LENGTH = 12;

/**
 * Fields of our errors that the SDK writes itself, never from what a server sent: not redacted, so
 * a server that issues a token spelled like them cannot garble `err.code` or `err.name`.
 */
const OWN_FIELDS = new Set([
  'name',
  'code',
  'endpoint',
  'field',
  'check',
  'operation',
  'status',
  'systemCode',
  'outcomeUnknown',
]);

/** Shorter secrets are not looked for (they would match ordinary words). */
const MIN_SECRET_LENGTH = 4;

/**
 * The ways JSON encoders write a string: with or without `\/` for `/` (PHP), `\uXXXX` for
 * non-ASCII characters (PHP, Python) and for `<`, `>`, `&` (Go), in every combination.
 */
function jsonForms(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  const escape = (pattern: RegExp) => (text: string) =>
    text.replace(pattern, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const forms: string[] = [];
  for (const slash of [false, true]) {
    const base = slash ? json.replace(/\//g, '\\/') : json;
    forms.push(
      base,
      escape(/[\u007f-\uffff]/g)(base),
      escape(/[<>&]/g)(base),
      escape(/[<>&\u007f-\uffff]/g)(base),
    );
  }
  return forms;
}

/**
 * The secret base64-encoded on its own (a Basic header) and inside a longer blob (a JWT payload that
 * carries it): there its encoding depends on where it starts within a 3-byte group, so each of the
 * three alignments is kept, without the characters its neighbours share.
 */
function base64Forms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms: string[] = [];
  for (const alphabet of ['base64', 'base64url'] as const) {
    forms.push(bytes.toString(alphabet));
    for (const offset of [1, 2]) {
      forms.push(
        Buffer.concat([Buffer.alloc(offset), bytes])
          .toString(alphabet)
          .slice(offset + 1, -3),
      );
    }
  }
  return forms;
}

/** The forms a secret may come back in. */
function encodedForms(secret: string): string[] {
  const forms = new Set([
    secret,
    formEncode(secret),
    encodeURIComponent(secret),
    encodeURI(secret),
    ...jsonForms(secret),
    secret.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`),
    secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;'),
    ...base64Forms(secret),
  ]);
  return [...forms].filter((form) => form.length >= MIN_SECRET_LENGTH).map(lowerCase);
}

/** Lower-cased code unit by code unit, so indexes into the result are indexes into `text`. */
function lowerCase(text: string): string {
  const lower = text.toLowerCase();
  if (lower.length === text.length) return lower;
  let result = '';
  for (const unit of text.split('')) {
    const l = unit.toLowerCase();
    result += l.length === 1 ? l : unit;
  }
  return result;
}

/**
 * Replaces every secret it was given, in every form it may take, with `[redacted]`.
 *
 * Secrets shorter than 4 characters are ignored; a piece of 12 or more characters of any form of a
 * secret is redacted wherever it appears, so a truncated echo is caught too.
 */
export class Redactor {
  /** A redactor that knows no secret: `redact` is the identity. */
  static readonly NONE = new Redactor([]);

  /** Whole forms shorter than a piece, matched exactly (ignoring case). */
  readonly #short: string[] = [];
  /** Every piece of {@link PIECE_LENGTH} characters of every longer form, lower-cased. */
  readonly #pieces = new Set<string>();
  /** The length of the longest form: a secret straddling a cut lies within this much of it. */
  readonly maxLength: number = 0;

  constructor(secrets: Iterable<string | undefined>) {
    for (const secret of secrets) {
      if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) continue;
      for (const form of encodedForms(secret)) {
        this.maxLength = Math.max(this.maxLength, form.length);
        if (form.length < PIECE_LENGTH) {
          this.#short.push(form);
          continue;
        }
        for (let i = 0; i + PIECE_LENGTH <= form.length; i++)
          this.#pieces.add(form.slice(i, i + PIECE_LENGTH));
      }
    }
  }

  /** Whether this redactor knows any secret. */
  get empty(): boolean {
    return this.#short.length === 0 && this.#pieces.size === 0;
  }

  /** `text` with every secret (in any form, or any piece of one) replaced by `[redacted]`. */
  redact(text: string): string {
    if (this.empty || text.length < MIN_SECRET_LENGTH) return text;
    const lower = lowerCase(text);
    // Mark every character covered by a match, then replace each covered run once.
    const covered = new Uint8Array(text.length);
    let any = false;
    const cover = (from: number, to: number): void => {
      covered.fill(1, from, to);
      any = true;
    };
    for (let i = 0; i + PIECE_LENGTH <= lower.length; i++) {
      if (this.#pieces.has(lower.slice(i, i + PIECE_LENGTH))) cover(i, i + PIECE_LENGTH);
    }
    for (const form of this.#short) {
      for (let at = lower.indexOf(form); at !== -1; at = lower.indexOf(form, at + 1))
        cover(at, at + form.length);
    }
    if (!any) return text;
    let result = '';
    for (let i = 0; i < text.length;) {
      if (covered[i] === 1) {
        while (i < text.length && covered[i] === 1) i++;
        result += REDACTED;
      } else {
        const start = i;
        while (i < text.length && covered[i] !== 1) i++;
        result += text.slice(start, i);
      }
    }
    return result;
  }

  /** A deep copy of a JSON-like value with every string redacted. */
  redactValue(value: unknown, depth = 0): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (typeof value !== 'object' || value === null || depth > 8) return value;
    if (Array.isArray(value)) return value.map((item) => this.redactValue(item, depth + 1));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.redactValue(v, depth + 1)]));
  }

  /**
   * Redacts an error in place: its message, stack and every own field (nested objects too) but the
   * ones the SDK writes itself (`code`, `name`, `endpoint`, ...), and
   * replaces its `cause` by a copy that keeps only the cause's name, message (redacted) and code.
   * The cause of a cause is dropped: a lower-level error (axios, zod, jose, a store driver) may
   * carry request headers, bodies or token payloads in fields of its own.
   */
  redactError<E>(error: E): E {
    if (!(error instanceof Error)) return error;
    for (const key of Object.getOwnPropertyNames(error)) {
      if (key === 'cause' || OWN_FIELDS.has(key)) continue;
      const descriptor = Object.getOwnPropertyDescriptor(error, key);
      if (descriptor === undefined || !('value' in descriptor)) continue;
      const redacted = this.redactValue(descriptor.value);
      if (redacted !== descriptor.value) define(error, key, redacted);
    }
    if ('cause' in error && error.cause !== undefined) define(error, 'cause', this.#summary(error.cause));
    return error;
  }

  #summary(cause: unknown): Error | undefined {
    if (!(cause instanceof Error)) return undefined;
    const copy = new Error(this.redact(cause.message));
    copy.name = cause.name;
    copy.stack = `${copy.name}: ${copy.message}`;
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string')
      Object.defineProperty(copy, 'code', { value: this.redact(code), enumerable: true });
    return copy;
  }
}

function define(target: object, key: string, value: unknown): void {
  try {
    const enumerable = Object.getOwnPropertyDescriptor(target, key)?.enumerable ?? false;
    Object.defineProperty(target, key, { value, enumerable, writable: true, configurable: true });
  } catch {
    // A frozen or odd property: leave it (our own errors have none).
  }
}

/** Request headers whose values are credentials, by name. */
const SENSITIVE_HEADER = /auth|token|secret|key|cookie|session|signature|password|credential|dpop/i;

/**
 * The secrets a request carries: its credential headers (the value, or the credentials after a
 * scheme and, for Basic, the password both as sent and decoded) and the values of the form fields
 * named in `fields`.
 */
export function requestSecrets(
  request: Pick<HttpRequest, 'headers' | 'body'>,
  fields: readonly string[],
): string[] {
  const found = headerSecrets(request.headers);
  if (request.body !== undefined && fields.length > 0) {
    const form = new URLSearchParams(request.body);
    for (const field of fields) found.push(...form.getAll(field));
  }
  return found;
}

/** The secrets among header values (see {@link requestSecrets}). */
export function headerSecrets(headers: Readonly<Record<string, string>>): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (!SENSITIVE_HEADER.test(name) || typeof value !== 'string') continue;
    const space = value.indexOf(' ');
    if (space === -1) {
      found.push(value);
      continue;
    }
    // `Scheme credentials`: the scheme is no secret (and would match the server's own challenges).
    const credentials = value.slice(space + 1).trim();
    found.push(credentials);
    if (value.slice(0, space).toLowerCase() !== 'basic') continue;
    // Not the whole `id:password` (the client id is no secret), only the password, as sent and decoded.
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const password = decoded.slice(decoded.indexOf(':') + 1);
    found.push(password);
    try {
      found.push(decodeURIComponent(password.replace(/\+/g, ' ')));
    } catch {
      // not form-encoded
    }
  }
  return found;
}

/**
 * The secrets of one protocol call, collected as its requests are built (each attempt has its own
 * client assertion and DPoP proof) and turned into a {@link Redactor} only when an error needs one.
 */
export class CallSecrets {
  readonly #fields: readonly string[];
  readonly #requests: Array<Pick<HttpRequest, 'headers' | 'body'>> = [];
  readonly #extra: string[];
  #redactor: Redactor | undefined;

  constructor(fields: readonly string[], extra: ReadonlyArray<string | undefined>) {
    this.#fields = fields;
    this.#extra = extra.filter((value): value is string => typeof value === 'string');
  }

  /** Records a request as it goes out. Cheap: it is read only if an error needs redacting. */
  sent(request: Pick<HttpRequest, 'headers' | 'body'>): void {
    this.#requests.push(request);
    this.#redactor = undefined;
  }

  /** Adds values that are secret (e.g. tokens in a response that is about to be refused). */
  add(...values: unknown[]): void {
    for (const value of values) if (typeof value === 'string') this.#extra.push(value);
    this.#redactor = undefined;
  }

  get redactor(): Redactor {
    this.#redactor ??= new Redactor([
      ...this.#extra,
      ...this.#requests.flatMap((r) => requestSecrets(r, this.#fields)),
    ]);
    return this.#redactor;
  }
}
