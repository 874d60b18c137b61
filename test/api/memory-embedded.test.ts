import { runApiSuite } from './api-suite.js';

runApiSuite('memory blobs + embedded metadata', async () => ({}));
