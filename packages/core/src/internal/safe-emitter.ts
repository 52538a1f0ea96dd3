/**
 * An eventemitter3 emitter whose listeners cannot hurt the emitter or each other: each listener is
 * wrapped when it is added, so one that throws does not hide the event from the listeners after
 * it, and an async one that rejects does not become an unhandled rejection. The wrapping is
 * invisible: `off(listener)` removes it and `listeners()` lists the functions that were added.
 */
import { EventEmitter } from 'eventemitter3';

type Names<E extends object> = EventEmitter.EventNames<E>;
type Listener<E extends object, T extends Names<E>> = EventEmitter.EventListener<E, T>;
type AnyFunction = (...args: unknown[]) => unknown;

/** An event emitter whose listeners cannot break it or each other (see the module comment). */
export class SafeEventEmitter<Events extends object> extends EventEmitter<Events> {
  /** Each listener's wrapper, and back. */
  readonly #wrappers = new WeakMap<AnyFunction, AnyFunction>();
  readonly #originals = new WeakMap<AnyFunction, AnyFunction>();

  /** Adds `fn` for `event`; its throws and rejections stay its own. */
  override on<T extends Names<Events>>(event: T, fn: Listener<Events, T>, context?: unknown): this {
    return super.on(event, this.#wrap(fn), context);
  }

  /** The same as {@link SafeEventEmitter.on}. */
  override addListener<T extends Names<Events>>(event: T, fn: Listener<Events, T>, context?: unknown): this {
    return super.addListener(event, this.#wrap(fn), context);
  }

  /** Adds `fn` for the next `event` only. */
  override once<T extends Names<Events>>(event: T, fn: Listener<Events, T>, context?: unknown): this {
    return super.once(event, this.#wrap(fn), context);
  }

  /** Removes `fn` (as it was added) from `event`; all of the event's listeners without `fn`. */
  override removeListener<T extends Names<Events>>(
    event: T,
    fn?: Listener<Events, T>,
    context?: unknown,
    once?: boolean,
  ): this {
    return super.removeListener(event, this.#wrapped(fn), context, once);
  }

  /** The same as {@link SafeEventEmitter.removeListener}. */
  override off<T extends Names<Events>>(
    event: T,
    fn?: Listener<Events, T>,
    context?: unknown,
    once?: boolean,
  ): this {
    return super.off(event, this.#wrapped(fn), context, once);
  }

  /** The listeners of `event`, as they were added. */
  override listeners<T extends Names<Events>>(event: T): Array<Listener<Events, T>> {
    return super
      .listeners(event)
      .map((fn) => (this.#originals.get(fn as AnyFunction) ?? fn) as Listener<Events, T>);
  }

  #wrap<L>(fn: L): L {
    if (typeof fn !== 'function') return fn; // eventemitter3 itself refuses it
    const listener = fn as unknown as AnyFunction;
    let wrapper = this.#wrappers.get(listener);
    if (wrapper === undefined) {
      wrapper = function (this: unknown, ...args: unknown[]): void {
        try {
          const result = listener.apply(this, args);
          if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
            (result as PromiseLike<unknown>).then(undefined, () => undefined);
          }
        } catch {
          // A listener's own failure is its own: the emitter and the other listeners carry on.
        }
      };
      this.#wrappers.set(listener, wrapper);
      this.#originals.set(wrapper, listener);
    }
    return wrapper as unknown as L;
  }

  #wrapped<L>(fn: L | undefined): L | undefined {
    return fn === undefined
      ? undefined
      : ((this.#wrappers.get(fn as unknown as AnyFunction) ?? fn) as unknown as L);
  }
}
