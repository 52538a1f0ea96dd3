/**
 * `WWW-Authenticate` parsing (RFC 9110 §11.6.1). One header may hold several challenges, e.g.
 * `Bearer error="invalid_token", DPoP algs="ES256", error="use_dpop_nonce"` (RFC 9449 §7.1): each
 * challenge's parameters are kept apart, so the DPoP `error` is never mistaken for the Bearer one.
 */

/** One challenge: its scheme (as sent) and its parameters (names lower-cased). */
export interface AuthenticationChallenge {
  /** The auth scheme, e.g. `Bearer` or `DPoP` (compare case-insensitively, RFC 9110 §11.1). */
  scheme: string;
  /** The challenge's auth-params by lower-cased name, e.g. `error`, `error_description`, `scope`. */
  parameters: Readonly<Record<string, string>>;
  /** A token68 value instead of parameters (`Basic abc==`), when present. */
  token68?: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;

/** Parses a `WWW-Authenticate` header value; tolerant of extra spaces and empty list elements. */
export function parseWwwAuthenticate(header: string | null | undefined): AuthenticationChallenge[] {
  const challenges: AuthenticationChallenge[] = [];
  if (header === null || header === undefined) return challenges;
  let rest = header;
  let current: { scheme: string; parameters: Record<string, string>; token68?: string } | undefined;
  const skip = (pattern: RegExp): void => {
    rest = rest.replace(pattern, '');
  };
  while (rest.length > 0) {
    skip(/^[\s,]+/);
    const name = TOKEN.exec(rest)?.[0];
    if (name === undefined) break;
    rest = rest.slice(name.length);
    const afterName = rest.replace(/^\s*/, '');
    if (current !== undefined && afterName.startsWith('=') && !/^=+\s*(,|$)/.test(afterName)) {
      // auth-param of the current challenge: name = token / quoted-string
      rest = afterName.slice(1).replace(/^\s*/, '');
      let value: string;
      if (rest.startsWith('"')) {
        const match = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
        value = (match?.[1] ?? rest.slice(1)).replace(/\\(.)/g, '$1');
        rest = match === null ? '' : rest.slice(match[0].length);
      } else {
        value = TOKEN.exec(rest)?.[0] ?? '';
        rest = rest.slice(value.length);
      }
      current.parameters[name.toLowerCase()] = value;
      continue;
    }
    // A new challenge: scheme [ token68 | auth-params ]
    current = { scheme: name, parameters: {} };
    challenges.push(current);
    skip(/^ +/);
    const token68 = /^[A-Za-z0-9\-._~+/]+=*(?=\s*(,|$))/.exec(rest);
    if (token68 !== null && !/^[^=]+=[^=]/.test(rest.slice(0, token68[0].length + 1))) {
      current.token68 = token68[0];
      rest = rest.slice(token68[0].length);
    }
  }
  return challenges;
}

/** The challenge of one scheme (case-insensitive), if the header has it. */
export function findChallenge(
  header: string | null | undefined,
  scheme: string,
): AuthenticationChallenge | undefined {
  const wanted = scheme.toLowerCase();
  return parseWwwAuthenticate(header).find((c) => c.scheme.toLowerCase() === wanted);
}
