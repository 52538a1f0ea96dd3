/**
 * @tessera/core: the OAuth 2.0 / OpenID Connect protocol {@link Client} and its errors.
 * This file alone decides what is public.
 */
export { Client } from './client.js';
export { wellKnownUrls } from './discovery.js';
export {
  ConfigurationError,
  IdTokenError,
  OAuthError,
  ResponseError,
  TesseraError,
  TokenStoreError,
  TransportError,
} from './errors.js';
export type { OAuthErrorFields, ResponseErrorFields, TesseraErrorCode } from './errors.js';
export type {
  Capability,
  ClientAuthMethod,
  ClientMetadata,
  ClientOptions,
  GrantOptions,
  IDTokenClaims,
  IntrospectionOptions,
  IntrospectionResponse,
  Parameters,
  RequestOptions,
  ServerMetadata,
  TokenEndpointResponse,
  TokenResponse,
} from './types.js';
