/**
 * describeTokenStore() run against users' adapters: the README's minimal adapter (no lock, no
 * change feed) and one whose change feed reaches a second handle on the same backend (the `peer`).
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from '@jest/globals';
import { TokenStoreError } from '@tessera/core';
import type { TokenSet, TokenStore, TokenStoreOperation } from '@tessera/core';
import { describeTokenStore } from '@tessera/testing';

/** A user's adapter: JSON strings in a Map that stands in for a key-value service. */
class JsonMapTokenStore implements TokenStore {
  #broken = false;

  constructor(readonly backend = new Map<string, string>()) {}

  async get(key: string): Promise<TokenSet | undefined> {
    this.#check('get');
    const json = this.backend.get(key);
    return json === undefined ? undefined : (JSON.parse(json) as TokenSet);
  }

  async set(key: string, tokens: TokenSet): Promise<void> {
    this.#check('set');
    this.backend.set(key, JSON.stringify(tokens));
  }

  async delete(key: string): Promise<void> {
    this.#check('delete');
    this.backend.delete(key);
  }

  /** Simulates the service going away. */
  break(): void {
    this.#broken = true;
  }

  #check(operation: TokenStoreOperation): void {
    if (this.#broken) throw new TokenStoreError(operation, 'key-value service unavailable');
  }
}

describeTokenStore('JsonMapTokenStore (README example)', () => new JsonMapTokenStore(), {
  breakStore: (store) => (store as JsonMapTokenStore).break(),
});

/** Storage and a change feed shared by several handles, as a server would be. */
interface SharedBackend {
  readonly data: Map<string, string>;
  readonly feed: EventEmitter;
}

/** One handle (one "process") on a {@link SharedBackend}; changes reach every handle's listeners. */
class FeedTokenStore extends JsonMapTokenStore {
  readonly shared: SharedBackend;
  closed = false;

  constructor(shared: SharedBackend) {
    super(shared.data);
    this.shared = shared;
  }

  override async set(key: string, tokens: TokenSet): Promise<void> {
    await super.set(key, tokens);
    setImmediate(() => this.shared.feed.emit('change', key));
  }

  override async delete(key: string): Promise<void> {
    await super.delete(key);
    setImmediate(() => this.shared.feed.emit('change', key));
  }

  subscribe(listener: (key: string) => void): () => void {
    this.shared.feed.on('change', listener);
    return () => this.shared.feed.off('change', listener);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const handles: FeedTokenStore[] = [];
describeTokenStore(
  'FeedTokenStore (a peer handle on the same backend)',
  () => {
    const store = new FeedTokenStore({ data: new Map(), feed: new EventEmitter() });
    handles.push(store);
    return store;
  },
  {
    peer: (store) => {
      const peer = new FeedTokenStore((store as FeedTokenStore).shared);
      handles.push(peer);
      return peer;
    },
    teardown: (store) => (store as FeedTokenStore).close(),
  },
);

describe('describeTokenStore', () => {
  it('tore down every store and peer of the suite above', () => {
    expect(handles.length).toBeGreaterThan(0);
    expect(handles.filter((handle) => !handle.closed)).toEqual([]);
    expect(new Set(handles.map((handle) => handle.shared)).size * 2).toBe(handles.length);
  });

  it.each([
    { ttlMs: 0, waitMs: 100 },
    { ttlMs: 100, waitMs: 100 },
    { ttlMs: 200, waitMs: 100 },
    { ttlMs: Number.NaN, waitMs: 100 },
  ])('refuses lockTimings %p with a RangeError', (lockTimings) => {
    expect(() =>
      describeTokenStore('never registered', () => new JsonMapTokenStore(), { lockTimings }),
    ).toThrow(RangeError);
  });
});
