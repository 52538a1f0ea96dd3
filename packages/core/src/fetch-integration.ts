/**
 * `manager.fetch()`: `fetch` with a managed token attached, retried once with the server's nonce on
 * `use_dpop_nonce`, and on a 401 `invalid_token` (or a 401 with no error) refreshed once and retried
 * once: never a loop (RFC 6750 §3, RFC 9449 §9).
 */
import type { TokenSource } from './internal/token-source.js';
import { authorization, isDPoP, isTokenRejection, schemeOf } from './resource-request.js';
import type { TokenSet } from './token-set.js';

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
