/**
 * @tessera/core: the OAuth 2.0 / OpenID Connect protocol {@link Client} and its errors.
 * This file alone decides what is public.
 */
export { Client } from './client.js';
export { wellKnownUrls } from './discovery.js';
export { DPoPHandle, accessTokenHash, randomDPoPKeyPair } from './dpop.js';
export type { DPoPAlgorithm, DPoPProofOptions, ResponseHeaders } from './dpop.js';
export { findChallenge, parseWwwAuthenticate } from './www-authenticate.js';
export { TokenManager } from './token-manager.js';
export type { TokenGrant, TokenHandle, TokenManagerOptions } from './token-manager.js';
export { attachTokenManager } from './axios-integration.js';
export { isTokenRejection } from './resource-request.js';
export { freezeTokenSet, tokenSetFromResponse } from './token-set.js';
export type {
  TokenInfoClient,
  TokenInfoListing,
  TokenInfoOptions,
  TokenInfoToken,
  TokenInfoTransaction,
} from './token-info.js';
export type { TokenSet } from './token-set.js';
export type { StoreLock, TokenStore, VersionedTokenSet } from './token-store.js';
export { MemoryTokenStore } from './memory-token-store.js';
export type { MemoryTokenStoreOptions } from './memory-token-store.js';
export type {
  RevocationResult,
  TokenManagerEventName,
  TokenManagerEvents,
  TokenVerifierEventName,
  TokenVerifierEvents,
} from './events.js';
export type { AuthenticationChallenge } from './www-authenticate.js';
export { TokenVerifier, protectedResourceMetadataUrl } from './verifier/token-verifier.js';
export type {
  DPoPVerificationOptions,
  TokenVerifierOptions,
  VerificationCacheSettings,
  VerifyOptions,
} from './verifier/options.js';
export { MemoryVerificationCache } from './verifier/verification-cache.js';
export type {
  ActiveVerification,
  CacheEviction,
  CachedVerification,
  RefusedVerification,
  MemoryVerificationCacheOptions,
  VerificationCache,
  VerifiedToken,
} from './verifier/verification-cache.js';
export type { BearerMethod, RequestHeaders, VerifiableRequest } from './verifier/request-credentials.js';
export { fastifyRequireToken, protectedResourceMetadata, requireToken } from './verifier/middleware.js';
export type {
  AuthenticatedRequest,
  FastifyLikeReply,
  FastifyLikeRequest,
  Middleware,
  ProtectedResourceMetadataHandler,
  ProtectedResourceMetadataOptions,
  RequireTokenOptions,
} from './verifier/middleware.js';
export { tokenFingerprint } from './logger.js';
export type { LogFields, LogLevel, Logger } from './logger.js';
export { DIAGNOSTICS_CHANNELS } from './diagnostics.js';
export type {
  RefreshOutcome,
  RefreshTraceContext,
  RequestTraceContext,
  VerifyTraceContext,
} from './diagnostics.js';
export {
  ConfigurationError,
  IdTokenError,
  InternalError,
  OAuthError,
  ResponseError,
  TesseraError,
  TokenManagerError,
  TokenStoreError,
  TokenVerificationError,
  TransportError,
} from './errors.js';
export type {
  OAuthErrorFields,
  ResponseErrorFields,
  TesseraErrorCode,
  TokenStoreOperation,
  TokenVerificationErrorFields,
  VerificationFailureReason,
} from './errors.js';
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
