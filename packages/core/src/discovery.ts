/**
 * Well-known metadata locations (RFC 8414 §3.1, OpenID Connect Discovery §4), in the order a
 * client tries them (RFC 8414 §3.1, OpenID Connect Discovery 1.0 §4).
 */
import { ConfigurationError } from './errors.js';

/**
 * The metadata URLs to try for an issuer, first to last:
 * 1. RFC 8414: `/.well-known/oauth-authorization-server` inserted before the path;
 * 2. OpenID Connect name at the RFC 8414 place (path issuers only);
 * 3. OpenID Connect Discovery: `/.well-known/openid-configuration` appended;
 * 4. the same with a trailing slash (path issuers only; as Edlink documents its issuer).
 *
 * @throws ConfigurationError `INVALID_CONFIGURATION` for an issuer that is not an absolute URL, or
 *   that has a query or fragment (RFC 8414 §2).
 */
export function wellKnownUrls(issuer: string): string[] {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch (cause) {
    throw new ConfigurationError('INVALID_CONFIGURATION', 'issuer is not an absolute URL', { cause });
  }
  if (url.search !== '' || url.hash !== '' || issuer.includes('?') || issuer.includes('#')) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      'issuer must not have a query or fragment (RFC 8414 §2)',
    );
  }
  const origin = url.origin;
  const path = url.pathname.replace(/\/$/, '');
  if (path === '') {
    return [`${origin}/.well-known/oauth-authorization-server`, `${origin}/.well-known/openid-configuration`];
  }
  return [
    `${origin}/.well-known/oauth-authorization-server${path}`,
    `${origin}/.well-known/openid-configuration${path}`,
    `${origin}${path}/.well-known/openid-configuration`,
    `${origin}${path}/.well-known/openid-configuration/`,
  ];
}
