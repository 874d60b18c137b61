// Runs bcrypt for the main thread (see password-pool.ts); the synchronous calls block only this thread.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import type { PasswordJob, PasswordResult } from './password-pool.js';

// On Linux a thread has its own nice value: run bcrypt at a lower priority, so on a busy machine the
// event loop (and the pulls it serves) gets the CPU first. /proc/thread-self names this thread's id.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + 10));
} catch {
  // Not Linux, or not allowed: the pool still keeps bcrypt off the event loop.
}

parentPort?.on('message', (job: PasswordJob) => {
  let result: PasswordResult;
  try {
    result =
      job.op === 'compare' ? { id: job.id, value: bcrypt.compareSync(job.password, job.hash) } : { id: job.id, value: bcrypt.hashSync(job.password, job.cost) };
  } catch (err) {
    result = { id: job.id, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort?.postMessage(result);
});
