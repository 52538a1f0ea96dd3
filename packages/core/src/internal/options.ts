/**
 * Options are checked once, at construction, by a zod schema each: a bad one is a
 * `ConfigurationError` `INVALID_CONFIGURATION` whose message names the option and what it must be,
 * never a `TypeError` later on, and never a silently odd behaviour (a negative retry delay, a `NaN`
 * tolerance). Values are not quoted in messages: an option may hold a secret.
 */
import { z } from 'zod';
import { ConfigurationError } from '../errors.js';
import type { Logger } from '../logger.js';

const finite = z
  .number({ error: 'must be a finite number' })
  .refine(Number.isFinite, 'must be a finite number');
/** A duration or a size that must be more than zero. */
export const positiveNumber = finite.refine((n) => n > 0, 'must be a positive number');
/** A duration or a count that may be zero. */
export const nonNegativeNumber = finite.refine((n) => n >= 0, 'must be a non-negative number');
export const nonNegativeInteger = nonNegativeNumber.refine(
  Number.isInteger,
  'must be a non-negative integer',
);
export const nonEmptyString = z.string({ error: 'must be a string' }).min(1, 'must not be empty');
export const fn = z.custom<(...args: never[]) => unknown>(
  (v) => typeof v === 'function',
  'must be a function',
);
const bytes = z.union([z.string(), z.instanceof(Buffer)], { error: 'must be a string or a Buffer' });

/** RFC 9110 §5.1 field names; a value must not hold CR, LF or NUL (RFC 9110 §5.5). */
const headers = z.record(
  z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a valid header name'),
  z
    .string({ error: 'must be a string' })
    .refine((v) => !/[\r\n\0]/.test(v), 'must not contain CR, LF or NUL'),
  { error: 'must be an object of header names to strings' },
);

/** A pino-style logger: `debug`, `info`, `warn` and `error` functions. */
export const logger = z.custom<Logger>(
  (v) =>
    (typeof v === 'object' || typeof v === 'function') &&
    v !== null &&
    ['debug', 'info', 'warn', 'error'].every(
      (level) => typeof (v as Record<string, unknown>)[level] === 'function',
    ),
  'must be a logger with debug, info, warn and error methods',
);

/** `ClientOptions` (see types.ts for what each means). */
export const clientOptionsSchema = z.looseObject(
  {
    privateKey: z
      .custom<object>((v) => typeof v === 'object' && v !== null, 'must be a CryptoKey or a private JWK')
      .optional(),
    timeoutMs: positiveNumber.optional(),
    retry: z
      .looseObject(
        {
          retries: nonNegativeInteger.optional(),
          minDelayMs: nonNegativeNumber.optional(),
          maxDelayMs: nonNegativeNumber.optional(),
        },
        { error: 'must be an object' },
      )
      .optional(),
    maxResponseBytes: positiveNumber.optional(),
    clockToleranceSeconds: nonNegativeNumber.optional(),
    allowInsecureRequests: z.boolean({ error: 'must be a boolean' }).optional(),
    tls: z
      .looseObject(
        { cert: bytes.optional(), key: bytes.optional(), ca: bytes.optional() },
        { error: 'must be an object' },
      )
      .optional(),
    axios: z
      .custom<object>(
        (v) => typeof v === 'function' || (typeof v === 'object' && v !== null),
        'must be an axios instance',
      )
      .optional(),
    headers: headers.optional(),
    basicAuthEncoding: z.enum(['rfc6749', 'raw'], { error: "must be 'rfc6749' or 'raw'" }).optional(),
    clientAssertionAudience: z
      .enum(['issuer', 'endpoint'], { error: "must be 'issuer' or 'endpoint'" })
      .optional(),
    logger: logger.optional(),
  },
  { error: 'must be an object' },
);

/**
 * Checks `value` against `schema`, or throws `ConfigurationError` `INVALID_CONFIGURATION` naming
 * the first bad option: `"TokenManager option retry.minDelayMs must be a non-negative number"`.
 */
export function parseOptions<T extends z.ZodType>(schema: T, value: unknown, owner: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.map(String).join('.');
  throw new ConfigurationError(
    'INVALID_CONFIGURATION',
    path === '' ? `${owner} options ${issue.message}` : `${owner} option ${path} ${issue.message}`,
  );
}
