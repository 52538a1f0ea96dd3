/**
 * A promise bounded in time: what a caller awaits from code it does not control (a cache, a user's
 * callback) settles within `ms`, with `timedOut()`'s error when it does not. The timer is unref'd
 * and cleared as soon as the promise settles.
 */
export async function withDeadline<T>(value: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      value,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(timedOut()), ms);
        timer.unref();
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
