// Two "processes" over one filesystem root (separate driver instances) and one embedded store (it is
// single-process by design: Berth on the embedded store runs one process).
import { join } from 'node:path';
import { FilesystemDriver } from '../../storage-drivers/blob/filesystem.js';
import { instrument } from '../../storage-drivers/blob/instrumented.js';
import { EmbeddedStore } from '../../storage-drivers/metadata/embedded.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { runFillSuite } from './fill-suite.js';

runFillSuite('filesystem + embedded', async () => {
  const scratch = await makeScratchDir('fills-fs');
  const root = join(scratch.path, 'storage');
  const metadata = new EmbeddedStore({ path: join(scratch.path, 'metadata') });
  const a = instrument(new FilesystemDriver({ root }), () => undefined);
  const b = instrument(new FilesystemDriver({ root }), () => undefined);
  return {
    a: { driver: a, metadata },
    b: { driver: b, metadata },
    async close() {
      await metadata.close();
      await a.close();
      await b.close();
      await scratch.remove();
    },
  };
});
