/**
 * Attaching a managed token to resource requests: `manager.fetch()` and `attachTokenManager(axios)`.
 * Both send `Authorization: Bearer …` (or `DPoP …` with a proof carrying `ath`), retry once with the
 * server's nonce on `use_dpop_nonce`, and on a 401 `invalid_token` (or a 401 with no error) refresh
 * once and retry once: never a loop (RFC 6750 §3, RFC 9449 §9, specs/10 §3).
 */
import type { AxiosError, AxiosInstance, AxiosResponse, InternalAxiosRequestConfig } from 'axios';
import type { DPoPHandle } from './dpop.js';
import { ConfigurationError, InternalError } from './errors.js';
import type { TokenHandle, TokenManager } from './token-manager.js';
import type { TokenSet } from './token-set.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

/** What the HTTP integration needs of a manager for one key. @internal */
export interface TokenSource {
  /** A valid token set (cached, refreshed or acquired as needed). */
  current(): Promise<TokenSet>;
  /**
   * After the resource server rejected `sentAccessToken`: the stored token set if another request
   * already replaced that token, else a forced (single-flight) refresh.
   */
  renewAfterRejection(sentAccessToken: string): Promise<TokenSet | undefined>;
  readonly dpop: DPoPHandle | undefined;
}

/** Links a TokenManager or TokenHandle to its source, without widening their public API. @internal */
export const tokenSources = new WeakMap<object, TokenSource>();

/** The request headers for a token set: the scheme, and a DPoP proof when the token is bound. */
async function authorization(
  source: TokenSource,
  tokens: TokenSet,
  method: string,
  url: string,
): Promise<Record<string, string>> {
  if (isDPoP(tokens)) {
    // A manager serves a DPoP-bound token only with the handle it is bound to: never reached.
    if (source.dpop === undefined)
      throw new InternalError('a DPoP-bound token reached a manager without a dpop handle');
    const proof = await source.dpop.proof(method, url, { accessToken: tokens.accessToken });
    return { authorization: `DPoP ${tokens.accessToken}`, dpop: proof };
  }
  // Always `Bearer` with a capital B, whatever case the token response used (specs/10 §1).
  return { authorization: `Bearer ${tokens.accessToken}` };
}

function isDPoP(tokens: TokenSet): boolean {
  return tokens.tokenType.toLowerCase() === 'dpop';
}

/**
 * Whether a 401 means "this token is no good": `error="invalid_token"`, or no error at all
 * (specs/10 §2). With `scheme`, only that scheme's challenge counts (RFC 9449 §7.1: a server may
 * send a Bearer and a DPoP challenge at once); a 401 without any challenge of it counts as a
 * rejection. `insufficient_scope` (403) and DPoP proof or nonce errors are not rejections.
 */
export function isTokenRejection(
  status: number,
  wwwAuthenticate: string | null | undefined,
  scheme?: string,
): boolean {
  if (status !== 401) return false;
  let challenges = parseWwwAuthenticate(wwwAuthenticate);
  if (scheme !== undefined)
    challenges = challenges.filter((c) => c.scheme.toLowerCase() === scheme.toLowerCase());
  if (challenges.length === 0) return true;
  return challenges.some((c) => c.parameters.error === undefined || c.parameters.error === 'invalid_token');
}

function schemeOf(tokens: TokenSet): string {
  return isDPoP(tokens) ? 'DPoP' : 'Bearer';
}

/** axios request data that can be sent twice: anything but a stream. */
function isReplayableAxiosData(data: unknown): boolean {
  if (typeof data !== 'object' || data === null) return true;
  if (typeof (data as { pipe?: unknown }).pipe === 'function') return false;
  return !(typeof ReadableStream !== 'undefined' && data instanceof ReadableStream);
}

/** Request bodies that can be sent twice. */
function isReplayable(body: unknown): boolean {
  if (body === undefined || body === null) return true;
  if (
    typeof body === 'string' ||
    body instanceof URLSearchParams ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body)
  )
    return true;
  if (typeof Blob !== 'undefined' && body instanceof Blob) return true;
  if (typeof FormData !== 'undefined' && body instanceof FormData) return true;
  return false;
}

/**
 * `fetch` with the key's token attached. Retries at most once for a DPoP nonce and at most once
 * after a refresh; a body that cannot be replayed (a stream) is sent once and never retried.
 * Rejects with the refresh's error (e.g. `OAuthError` `invalid_grant`, after which the key is
 * cleared) rather than returning the original 401.
 */
export async function fetchWithTokens(
  source: TokenSource,
  input: string | URL,
  init: RequestInit = {},
  fetchImpl: typeof fetch = globalThis.fetch,
): Promise<Response> {
  const url = String(input);
  const method = (init.method ?? 'GET').toUpperCase();
  const replayable = isReplayable(init.body);
  const send = async (tokens: TokenSet): Promise<Response> => {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(await authorization(source, tokens, method, url)))
      headers.set(name, value);
    return fetchImpl(input, { ...init, headers });
  };

  const tokens = await source.current();
  const dpop = isDPoP(tokens) ? source.dpop : undefined;
  const sendAndLearn = async (with_: TokenSet): Promise<{ response: Response; challenged: boolean }> => {
    const response = await send(with_);
    // Always remember the latest nonce (RFC 9449 §9), retried or not.
    const challenged = dpop?.learnFromResponse(url, response) ?? false;
    return { response, challenged };
  };
  const first = await sendAndLearn(tokens);
  let { response } = first;
  if (!replayable) return response;
  if (first.challenged) {
    await response.body?.cancel();
    ({ response } = await sendAndLearn(tokens));
  }
  if (isTokenRejection(response.status, response.headers.get('www-authenticate'), schemeOf(tokens))) {
    let renewed: TokenSet | undefined;
    try {
      renewed = await source.renewAfterRejection(tokens.accessToken);
    } catch (error) {
      await response.body?.cancel(); // free the connection before reporting the refresh's failure
      throw error;
    }
    if (renewed === undefined) return response; // nothing to renew with: the 401 stands
    await response.body?.cancel();
    ({ response } = await sendAndLearn(renewed));
  }
  return response;
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
  const source = tokenSources.get(manager);
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
