import { EmbeddedStore } from './embedded.js';
import { redisConfigSchema, type RedisConfig } from './redis-config.js';
import { RedisStore } from './redis.js';
import type { MetadataStore } from './types.js';

/** The part of Berth's configuration (`metadata`) the metadata factory reads. */
export interface MetadataStoreConfig {
  store: 'embedded' | 'redis';
  redis?: RedisConfig | undefined;
  /** The event log's maximum length, for either store (absent: the stores' default, 100000). */
  eventLogMaxLength?: number | undefined;
}

/**
 * Opens the configured metadata store. For Redis it waits up to `connectTimeoutMs` for the first
 * connection but returns the store either way: calls fail with MetadataUnavailableError (503, /readyz
 * not ready) until Redis answers, and the client keeps reconnecting by itself.
 */
export async function createMetadataStore(config: MetadataStoreConfig, paths: { metadataPath: string }): Promise<MetadataStore> {
  const maxLength = config.eventLogMaxLength === undefined ? {} : { eventLogMaxLength: config.eventLogMaxLength };
  switch (config.store) {
    case 'embedded':
      return new EmbeddedStore({ path: paths.metadataPath, ...maxLength });
    case 'redis': {
      const redis = config.redis ?? redisConfigSchema.parse({});
      const store = new RedisStore({ ...redis, connectionName: 'berth', ...maxLength });
      await store.waitUntilReady(redis.connectTimeoutMs);
      return store;
    }
  }
}
