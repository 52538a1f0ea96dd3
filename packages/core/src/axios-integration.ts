/**
 * `attachTokenManager(axios)`: a managed token on every request of an axios instance, with the same
 * retry rules as `manager.fetch()` (RFC 6750 §3, RFC 9449 §9).
 */
import type { AxiosError, AxiosInstance, AxiosResponse, InternalAxiosRequestConfig } from 'axios';
import { ConfigurationError } from './errors.js';
import { tokenSourceOf } from './internal/token-source.js';
import { authorization, isDPoP, isTokenRejection, schemeOf } from './resource-request.js';
import type { TokenHandle, TokenManager } from './token-manager.js';
import type { TokenSet } from './token-set.js';

/** axios request data that can be sent twice: anything but a stream. */
function isReplayableAxiosData(data: unknown): boolean {
  if (typeof data !== 'object' || data === null) return true;
  if (typeof (data as { pipe?: unknown }).pipe === 'function') return false;
  return !(typeof ReadableStream !== 'undefined' && data instanceof ReadableStream);
}

const RETRIED = Symbol('tessera.retried');
const NONCE_RETRIED = Symbol('tessera.nonceRetried');
const SENT = Symbol('tessera.sent');
type TesseraConfig = InternalAxiosRequestConfig & {
  [RETRIED]?: boolean;
  [NONCE_RETRIED]?: boolean;
  [SENT]?: TokenSet;
};

/**
 * Attaches a manager's (or a handle's) token to every request of an axios instance, as
 * `manager.fetch()` does, including the one refresh-and-retry on a 401 and the one DPoP nonce
 * retry. Returns a function that detaches it.
 *
 * @example
 * ```ts
 * const api = axios.create({ baseURL: 'https://api.example' });
 * const detach = attachTokenManager(api, manager.for('billing'));
 * await api.get('/invoices');
 * ```
 */
export function attachTokenManager(instance: AxiosInstance, manager: TokenManager | TokenHandle): () => void {
  const source = tokenSourceOf(manager);
  if (source === undefined) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      'attachTokenManager needs a TokenManager or a handle from manager.for(key)',
    );
  }
  const requestId = instance.interceptors.request.use(async (config: TesseraConfig) => {
    const tokens = config[SENT] ?? (await source.current());
    config[SENT] = tokens;
    const url = instance.getUri(config);
    for (const [name, value] of Object.entries(
      await authorization(source, tokens, (config.method ?? 'get').toUpperCase(), url),
    )) {
      config.headers.set(name, value);
    }
    return config;
  });

  /** A second try of the request, or `undefined` when no retry applies. */
  const retry = async (response: AxiosResponse): Promise<AxiosResponse | undefined> => {
    const config = response.config as TesseraConfig;
    const tokens = config[SENT];
    if (tokens === undefined) return undefined;
    const headers = response.headers as Record<string, string | undefined>;
    const url = instance.getUri(config);
    // Always remember the latest nonce (RFC 9449 §9), even when no retry follows.
    const challenged =
      isDPoP(tokens) && (source.dpop?.learnFromResponse(url, { status: response.status, headers }) ?? false);
    // A stream body was consumed by the first attempt: sending it again would send nothing.
    if (!isReplayableAxiosData(config.data)) return undefined;
    if (challenged && !config[NONCE_RETRIED]) {
      config[NONCE_RETRIED] = true;
      return instance.request(config);
    }
    if (
      !config[RETRIED] &&
      isTokenRejection(response.status, headers['www-authenticate'], schemeOf(tokens))
    ) {
      config[RETRIED] = true;
      const renewed = await source.renewAfterRejection(tokens.accessToken);
      if (renewed === undefined) return undefined;
      config[SENT] = renewed;
      return instance.request(config);
    }
    return undefined;
  };

  const responseId = instance.interceptors.response.use(
    async (response) => (await retry(response)) ?? response,
    async (error: AxiosError) => {
      const retried = error.response === undefined ? undefined : await retry(error.response);
      if (retried !== undefined) return retried;
      throw error;
    },
  );
  return () => {
    instance.interceptors.request.eject(requestId);
    instance.interceptors.response.eject(responseId);
  };
}
