import { TransportError } from '../errors.js';

/**
 * Waits `ms`, or rejects with `TransportError` `ABORTED` as soon as `signal` aborts. The timer is
 * not unref'd: a caller is awaiting it.
 */
export function sleep(ms: number, signal: AbortSignal | undefined, endpoint: string): Promise<void> {
  if (signal?.aborted) return Promise.reject(aborted(endpoint, signal.reason));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(aborted(endpoint, signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error of an aborted request or wait. */
export function aborted(endpoint: string, reason: unknown): TransportError {
  return new TransportError('ABORTED', `request to ${endpoint} was aborted`, { endpoint }, { cause: reason });
}
