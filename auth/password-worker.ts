// Runs bcrypt for the main thread (see password-pool.ts); the synchronous calls block only this thread.
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import type { PasswordJob, PasswordResult } from './password-pool.js';

parentPort?.on('message', (job: PasswordJob) => {
  let result: PasswordResult;
  try {
    result =
      job.op === 'compare'
        ? { id: job.id, value: bcrypt.compareSync(job.password, job.hash) }
        : { id: job.id, value: bcrypt.hashSync(job.password, job.cost) };
  } catch (err) {
    result = { id: job.id, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort?.postMessage(result);
});
