/**
 * One timer for any number of keys: a min-heap of due times with lazy deletion (the map says
 * which entry of a key is current). Due keys are handed out in batches, yielding to the event loop
 * between batches, so 100,000 keys due at once do not stall it. With a `concurrency`, at most that
 * many runs are under way at once and the other due keys wait in line (first due, first run), so
 * many keys coming due together neither open thousands of connections nor pile up work.
 */

/** Keys handed to the callback per timer turn. */
const BATCH = 256;
/** setTimeout's largest delay (about 24.8 days); longer waits re-arm. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class RefreshScheduler {
  readonly #due = new Map<string, number>();
  readonly #heap: Array<{ at: number; key: string }> = [];
  readonly #now: () => number;
  readonly #run: (key: string) => void | Promise<void>;
  readonly #concurrency: number;
  /** Due keys waiting for a run, read from `#head` (no O(n) shift). */
  #queue: string[] = [];
  #head = 0;
  #active = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;

  /**
   * @param run - called for each due key; failures are its own to report (a rejection is ignored).
   * @param options.concurrency - runs under way at once at most (a run lasts until its promise
   *   settles). @default unlimited: `run` is called as keys come due
   */
  constructor(
    now: () => number,
    run: (key: string) => void | Promise<void>,
    options: { concurrency?: number } = {},
  ) {
    this.#now = now;
    this.#run = run;
    this.#concurrency = options.concurrency ?? Number.POSITIVE_INFINITY;
  }

  /** How many keys are scheduled. */
  get size(): number {
    return this.#due.size;
  }

  /** Schedules (or reschedules) `key` at `atMs` (epoch ms). */
  schedule(key: string, atMs: number): void {
    if (this.#closed) return;
    this.#due.set(key, atMs);
    this.#push({ at: atMs, key });
    if (atMs < this.#timerAt) this.#arm();
  }

  /** Forgets `key`. */
  cancel(key: string): void {
    this.#due.delete(key);
  }

  /** Stops the timer and forgets every key. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due.clear();
    this.#heap.length = 0;
    this.#queue = [];
    this.#head = 0;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#dropStale();
    const next = this.#heap[0];
    if (next === undefined || this.#closed) return;
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, next.at - this.#now()));
    this.#timerAt = next.at;
    this.#timer = setTimeout(() => this.#fire(), delay);
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#now();
    const ready: string[] = [];
    while (ready.length < BATCH) {
      this.#dropStale();
      const top = this.#heap[0];
      if (top === undefined || top.at > now) break;
      this.#pop();
      this.#due.delete(top.key);
      ready.push(top.key);
    }
    for (const key of ready) this.#hand(key);
    this.#arm();
  }

  #hand(key: string): void {
    if (this.#concurrency === Number.POSITIVE_INFINITY) {
      void this.#run(key);
      return;
    }
    this.#queue.push(key);
    this.#pump();
  }

  #pump(): void {
    while (this.#active < this.#concurrency && this.#head < this.#queue.length && !this.#closed) {
      const key = this.#queue[this.#head++]!;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      this.#active += 1;
      Promise.resolve()
        .then(() => this.#run(key))
        .catch(() => undefined) // reported by the run itself
        .finally(() => {
          this.#active -= 1;
          this.#pump();
        });
    }
  }

  /** Removes heap entries that were cancelled or rescheduled. */
  #dropStale(): void {
    for (
      let top = this.#heap[0];
      top !== undefined && this.#due.get(top.key) !== top.at;
      top = this.#heap[0]
    ) {
      this.#pop();
    }
  }

  #push(entry: { at: number; key: string }): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= entry.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left;
      if (heap[child]!.at >= last.at) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}
