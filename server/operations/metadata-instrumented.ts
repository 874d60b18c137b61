import type { MetadataStore } from '../../storage-drivers/metadata/types.js';
import type { MetadataObservation } from './metrics.js';

/**
 * Times every call of a metadata store and reports it (for `Metrics.observeMetadata`). A Proxy rather
 * than a hand-written wrapper so that methods added to MetadataStore later are measured too; methods
 * run with the real store as `this`, so stores using private fields keep working.
 */
export function instrumentMetadata(store: MetadataStore, observe: (o: MetadataObservation) => void): MetadataStore {
  // The sub-interfaces (garbage collection, pull statistics, quotas, retention, replication, events) are
  // objects of their own: their calls are reported as `gc.<method>`, `pulls.<method>`, …, `events.<method>`.
  const parts = new Map<PropertyKey, unknown>(
    (['gc', 'pulls', 'quotas', 'retention', 'replication', 'events'] as const).map((name) => [
      name,
      timedMethods(store[name], store.name, `${name}.`, observe),
    ]),
  );
  return timedMethods(store, store.name, '', observe, (property) => parts.get(property));
}

function timedMethods<T extends object>(
  subject: T,
  storeName: string,
  opPrefix: string,
  observe: (o: MetadataObservation) => void,
  override?: (property: PropertyKey) => unknown,
): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(subject, {
    get(target, property, receiver) {
      const replaced = override?.(property);
      if (replaced !== undefined) return replaced;
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string' || property === 'constructor') return value;
      const cached = wrapped.get(property);
      if (cached) return cached;
      const method = value as (...args: unknown[]) => unknown;
      const timed = (...args: unknown[]): unknown => {
        const started = performance.now();
        const report = (error?: unknown) =>
          observe({ store: storeName, op: opPrefix + property, seconds: (performance.now() - started) / 1000, ...(error !== undefined ? { error } : {}) });
        let result: unknown;
        try {
          result = method.apply(target, args);
        } catch (err) {
          report(err);
          throw err;
        }
        if (result instanceof Promise) {
          return result.then(
            (v: unknown) => {
              report();
              return v;
            },
            (err: unknown) => {
              report(err ?? new Error('rejected'));
              throw err;
            },
          );
        }
        return result;
      };
      wrapped.set(property, timed);
      return timed;
    },
  });
}
