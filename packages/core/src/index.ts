/**
 * @tessera/core: the OAuth 2.0 / OpenID Connect protocol {@link Client} and its errors.
 * This file alone decides what is public.
 */
export { Client } from './client.js';
export { wellKnownUrls } from './discovery.js';
export { DPoPHandle, accessTokenHash, randomDPoPKeyPair } from './dpop.js';
export type { DPoPAlgorithm, DPoPProofOptions, ResponseHeaders } from './dpop.js';
export { findChallenge, parseWwwAuthenticate } from './www-authenticate.js';
export type { AuthenticationChallenge } from './www-authenticate.js';
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
  BackchannelAuthenticationResponse,
  Capability,
  ClientAuthMethod,
  ClientMetadata,
  ClientOptions,
  DeviceAuthorizationResponse,
  GrantOptions,
  IDTokenClaims,
  IntrospectionOptions,
  IntrospectionResponse,
  Parameters,
  PollOptions,
  PollState,
  RequestOptions,
  ServerMetadata,
  TokenEndpointResponse,
  TokenResponse,
} from './types.js';
