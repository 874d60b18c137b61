// Runs the operator's scanner command for one image and keeps what it prints on stdout as the report.
// The command is a shell command line; the image reference is appended as its last argument (and is
// in BERTH_SCAN_REF), so `trivy image --format json --quiet` scans `trivy image … <ref>`.
import { spawn } from 'node:child_process';

export type ScanOutcome = { ok: true; report: Buffer } | { ok: false; error: string };

export interface ScanRequest {
  command: string;
  ref: string;
  /** Added to this process's environment for the scanner. */
  env: Record<string, string>;
  maxReportBytes: number;
  timeoutMs: number;
}

/** What a scanner wrote on stderr, last part only: enough to tell why it failed. */
const STDERR_TAIL_BYTES = 2048;

export function runScanner(request: ScanRequest): Promise<ScanOutcome> {
  return new Promise((resolve) => {
    // Its own process group, so a timeout stops the whole pipeline the shell started, not just the shell.
    const child = spawn('/bin/sh', ['-c', `${request.command} "$@"`, 'berth-scan', request.ref], {
      env: { ...process.env, ...request.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const out: Buffer[] = [];
    let outBytes = 0;
    let errTail = Buffer.alloc(0);
    let failure: string | undefined;
    const killGroup = (reason: string) => {
      failure ??= reason;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => killGroup(`the scanner did not finish within ${Math.round(request.timeoutMs / 1000)} s`), request.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > request.maxReportBytes) killGroup(`the report is larger than ${request.maxReportBytes} bytes (--max-report-bytes)`);
      else out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      errTail = Buffer.concat([errTail, chunk]);
      if (errTail.length > STDERR_TAIL_BYTES) errTail = errTail.subarray(errTail.length - STDERR_TAIL_BYTES);
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, error: `cannot start the scanner: ${err.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = errTail.toString('utf8').trim();
      const withStderr = (message: string) => (stderr ? `${message}; stderr: ${stderr}` : message);
      if (failure) resolve({ ok: false, error: failure });
      else if (code !== 0) resolve({ ok: false, error: withStderr(`the scanner exited with ${signal ?? `code ${code}`}`) });
      else if (outBytes === 0) resolve({ ok: false, error: withStderr('the scanner printed no report on stdout') });
      else resolve({ ok: true, report: Buffer.concat(out) });
    });
  });
}
