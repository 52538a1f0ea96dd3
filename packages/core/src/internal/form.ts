import { ConfigurationError } from '../errors.js';
import type { Parameters } from '../types.js';

/**
 * Form-encodes a value as `application/x-www-form-urlencoded` does (RFC 6749 Appendix B, WHATWG
 * URL serializer): `*-._` and alphanumerics kept, space as `+`, everything else `%XX` of its
 * UTF-8 bytes. Used for `client_secret_basic` before base64 (RFC 6749 §2.3.1).
 */
export function formEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/**
 * Appends caller parameters to a form: arrays become repeated fields in order (RFC 8707 §2),
 * `undefined` and empty strings are left out (RFC 6749 §3.2: empty counts as absent).
 * `resource` values must be absolute URIs without a fragment (RFC 8707 §2).
 */
export function appendParameters(form: URLSearchParams, parameters: Parameters | undefined): void {
  if (parameters === undefined) return;
  const entries: Iterable<[string, unknown]> =
    parameters instanceof URLSearchParams
      ? parameters.entries()
      : Object.entries(checkedParameters(parameters));
  for (const [name, value] of entries) {
    if (value === undefined) continue;
    if (typeof value !== 'string' && !Array.isArray(value)) throw badParameter(name);
    const values: readonly unknown[] = typeof value === 'string' ? [value] : value;
    for (const item of values) {
      if (typeof item !== 'string') throw badParameter(name);
      if (item === '') continue;
      if (name === 'resource') assertResource(item);
      form.append(name, item);
    }
  }
}

/** Parameters must be a `URLSearchParams` or a plain object (not a string, an array, a number). */
function checkedParameters(parameters: unknown): Record<string, unknown> {
  const proto =
    typeof parameters === 'object' && parameters !== null ? Object.getPrototypeOf(parameters) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      'parameters must be an object of strings (or arrays of strings) or a URLSearchParams',
    );
  }
  return parameters as Record<string, unknown>;
}

function badParameter(name: string): ConfigurationError {
  return new ConfigurationError(
    'INVALID_CONFIGURATION',
    `parameter ${name} must be a string or an array of strings`,
  );
}

function assertResource(value: string): void {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || value.includes('#')) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      'parameter resource must be an absolute URI without a fragment (RFC 8707 §2)',
    );
  }
}
