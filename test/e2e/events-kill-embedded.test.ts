import { join } from 'node:path';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { runKillSuite } from './events-kill-suite.js';

// Both processes on the data dir's own embedded store (as `http.workers: 2` runs); the test reads it too.
runKillSuite('two processes on one embedded store', async () => ({
  metadataConfig: () => undefined,
  async open(dataDir) {
    const store = new EmbeddedStore({ path: join(dataDir, 'metadata') });
    return { events: store.events, close: () => store.close() };
  },
  stop: async () => {},
}));
