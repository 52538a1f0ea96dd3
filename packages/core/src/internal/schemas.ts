/**
 * zod schemas of every body a server sends us, and the one function that turns a schema failure
 * into a `ResponseError` naming the endpoint and the field.
 */
import { z } from 'zod';
import { ResponseError } from '../errors.js';

const required = (type: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? 'is required' : `must be ${type}`),
});

const optionalString = z.string(required('a string')).optional();
const stringArray = z.array(z.string(), required('an array of strings')).optional();

/**
 * A number, or a string of digits (older Azure AD sends `"3599"`; RFC 6749 Appendix A.14) that is a
 * finite number (400 nines are not).
 */
const numeric = z.union(
  [
    z.number().nonnegative(),
    z
      .string()
      .regex(/^\d+(\.\d+)?$/)
      .transform(Number)
      .pipe(z.number()),
  ],
  {
    error: 'must be a non-negative number',
  },
);

/** RFC 8414 §2 / OpenID Connect Discovery §3. */
export const serverMetadataSchema = z.looseObject({
  issuer: z.string(required('a string')).min(1, 'must not be empty'),
  authorization_endpoint: optionalString,
  token_endpoint: optionalString,
  jwks_uri: optionalString,
  introspection_endpoint: optionalString,
  revocation_endpoint: optionalString,
  device_authorization_endpoint: optionalString,
  backchannel_authentication_endpoint: optionalString,
  token_endpoint_auth_methods_supported: stringArray,
  token_endpoint_auth_signing_alg_values_supported: stringArray,
  grant_types_supported: stringArray,
  id_token_signing_alg_values_supported: stringArray,
  introspection_signing_alg_values_supported: stringArray,
  dpop_signing_alg_values_supported: stringArray,
  mtls_endpoint_aliases: z.record(z.string(), z.string(), required('an object of URLs')).optional(),
});

/** RFC 6749 §5.1 (plus RFC 8693 §2.2.1 `issued_token_type`). */
export const tokenResponseSchema = z.looseObject({
  access_token: z.string(required('a string')).min(1, 'must not be empty'),
  token_type: z.string(required('a string')).min(1, 'must not be empty'),
  expires_in: numeric.optional(),
  refresh_token: optionalString,
  scope: optionalString,
  id_token: optionalString,
  issued_token_type: optionalString,
});

/** RFC 7662 §2.2. `scope` as an array and numeric strings are normalised. */
export const introspectionResponseSchema = z.looseObject({
  active: z.boolean(required('a boolean')),
  scope: z
    .union([z.string(), z.array(z.string()).transform((s) => s.join(' '))], { error: 'must be a string' })
    .optional(),
  client_id: optionalString,
  username: optionalString,
  token_type: optionalString,
  exp: numeric.optional(),
  iat: numeric.optional(),
  nbf: numeric.optional(),
  sub: optionalString,
  aud: z
    .union([z.string(), z.array(z.string())], { error: 'must be a string or an array of strings' })
    .optional(),
  iss: optionalString,
  jti: optionalString,
  cnf: z.looseObject({}, required('an object')).optional(),
});

const positiveSeconds = z.union(
  [z.number().positive(), z.string().regex(/^\d+$/).transform(Number).pipe(z.number().positive())],
  {
    error: 'must be a positive number of seconds',
  },
);

/** RFC 8628 §3.2; `verification_url` (older Google and Azure AD) is folded into `verification_uri`. */
export const deviceAuthorizationResponseSchema = z.preprocess(
  (value) => {
    if (typeof value !== 'object' || value === null || 'verification_uri' in value) return value;
    const { verification_url: url, ...rest } = value as Record<string, unknown>;
    return url === undefined ? value : { ...rest, verification_uri: url };
  },
  z.looseObject({
    device_code: z.string(required('a string')).min(1, 'must not be empty'),
    user_code: z.string(required('a string')).min(1, 'must not be empty'),
    verification_uri: z.string(required('a string')).min(1, 'must not be empty'),
    verification_uri_complete: optionalString,
    expires_in: positiveSeconds,
    interval: numeric.optional(),
  }),
);

/** CIBA Core §7.3. */
export const backchannelAuthenticationResponseSchema = z.looseObject({
  auth_req_id: z.string(required('a string')).min(1, 'must not be empty'),
  expires_in: positiveSeconds,
  interval: numeric.optional(),
});

/** One token of an OA4MP token-info listing; `lifetime` and `issued_at` in milliseconds. */
const tokenInfoTokenSchema = z.looseObject({
  is_valid: z.boolean(required('a boolean')),
  lifetime: z.number(required('a number')).nonnegative(),
  issued_at: z.number(required('a number')).nonnegative(),
  jti: z.string(required('a string')),
  token: z.string(required('a string')),
});

/** The OA4MP token-info grant's answer (`urn:oa4mp:params:oauth:grant-type:token-info`). */
export const tokenInfoResponseSchema = z.looseObject({
  user_uid: z.string(required('a string')),
  clients: z.array(
    z.looseObject({
      client_id: z.string(required('a string')),
      transactions: z
        .array(
          z.looseObject({
            code: z.string(required('a string')),
            tokens: z
              .array(
                z.looseObject({
                  access_token: tokenInfoTokenSchema.optional(),
                  refresh_token: tokenInfoTokenSchema.optional(),
                }),
                required('an array'),
              )
              .default([]),
          }),
          required('an array'),
        )
        .default([]),
    }),
    required('an array'),
  ),
});

/** RFC 6749 §5.2 error body. Only `error` decides; malformed optional members are dropped. */
export const oauthErrorSchema = z.looseObject({
  error: z.string().min(1),
  error_description: z.string().optional().catch(undefined),
  error_uri: z.string().optional().catch(undefined),
});

/** Parses `value` or throws `ResponseError` `INVALID_RESPONSE` naming the first failing field. */
export function parseWith<T extends z.ZodType>(
  schema: T,
  value: unknown,
  context: { endpoint: string; status: number },
): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.map(String).join('.');
  const message = field === '' ? 'body must be a JSON object' : `${field} ${issue.message}`;
  throw new ResponseError(
    'INVALID_RESPONSE',
    `${context.endpoint} response: ${message}`,
    { endpoint: context.endpoint, status: context.status, ...(field === '' ? {} : { field }) },
    { cause: result.error },
  );
}
