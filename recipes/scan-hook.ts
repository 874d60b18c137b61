// Scan hook: receives Berth's io.berth.manifest.pushed events, runs a scanner on each pushed image,
// and attaches the scanner's report to the image as an OCI referrer, so that
// `GET /v2/<name>/referrers/<digest>?artifactType=…` lists it. See docs/events-recipes.md.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { basename } from 'node:path';
import { listen, parseOptions, readSecretFile, readTextFile, required, integer, runMain, stopOnSignals, UsageError } from './hook-cli.js';
import { log, receiveEvent, RecentIds, sendJson } from './hook-receiver.js';
import { OciClient, RegistryError, sha256Digest, type RegistryCredentials } from './registry-client.js';
import { DEFAULT_ARTIFACT_TYPE, EMPTY_CONFIG, OCI_MANIFEST, reportManifest, scanTarget, type ScanJob } from './scan-report.js';
import { runScanner } from './scanner-run.js';

const USAGE = `usage: node dist/recipes/scan-hook.js --registry <url> --secret-file <file> --scanner "<command>" [options]

  --registry <url>           Berth's base URL, e.g. http://127.0.0.1:5000 (its host:port names the images)
  --secret-file <file>       the endpoint's signing secret(s), one per line
  --scanner "<command>"      shell command; the image reference is appended as its last argument
  --scanner-name <name>      recorded in the report's annotations (default: the command's first word)
  --artifact-type <type>     the report's artifactType (default ${DEFAULT_ARTIFACT_TYPE})
  --report-media-type <type> the report layer's media type (default application/json)
  --username <name> --password-file <file>   push as this user or robot (token flow or Basic)
  --token-file <file>        or send this bearer token (re-read for every request)
  --host <address>           listen address (default 127.0.0.1)
  --port <n>                 listen port (default 8080; 0 = any free port, logged)
  --queue <n>                events waiting behind the running scan before 503 (default 100)
  --max-report-bytes <n>     a larger report fails the scan (default 16777216)
  --scan-timeout <seconds>   the scanner is killed after this long (default 900)
`;

interface Settings {
  registry: OciClient;
  secrets: string[];
  scanner: string;
  scannerName: string;
  artifactType: string;
  reportMediaType: string;
  host: string;
  port: number;
  maxQueued: number;
  maxReportBytes: number;
  scanTimeoutMs: number;
}

function settingsFrom(argv: string[]): Settings {
  const o = parseOptions(argv, {
    registry: { type: 'string' },
    'secret-file': { type: 'string' },
    scanner: { type: 'string' },
    'scanner-name': { type: 'string' },
    'artifact-type': { type: 'string' },
    'report-media-type': { type: 'string' },
    username: { type: 'string' },
    'password-file': { type: 'string' },
    'token-file': { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    queue: { type: 'string' },
    'max-report-bytes': { type: 'string' },
    'scan-timeout': { type: 'string' },
  });
  let base: URL;
  try {
    base = new URL(required(o.registry, 'registry'));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--registry ${o.registry}: not a URL (e.g. http://127.0.0.1:5000)`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--registry must be an http:// or https:// URL, got ${base.protocol}`);
  let credentials: RegistryCredentials = { kind: 'none' };
  if (o['token-file'] !== undefined) {
    if (o.username !== undefined) throw new UsageError('give --token-file or --username/--password-file, not both');
    credentials = { kind: 'bearer-file', path: o['token-file'] };
    readTextFile(o['token-file'], 'token-file');
  } else if (o.username !== undefined || o['password-file'] !== undefined) {
    credentials = {
      kind: 'basic',
      username: required(o.username, 'username'),
      password: readTextFile(required(o['password-file'], 'password-file'), 'password-file'),
    };
  }
  const scanner = required(o.scanner, 'scanner');
  return {
    registry: new OciClient(base, credentials),
    secrets: readSecretFile(required(o['secret-file'], 'secret-file')),
    scanner,
    scannerName: o['scanner-name'] ?? commandName(scanner),
    artifactType: o['artifact-type'] ?? DEFAULT_ARTIFACT_TYPE,
    reportMediaType: o['report-media-type'] ?? 'application/json',
    host: o.host ?? '127.0.0.1',
    port: integer(o.port, 'port', 8080),
    maxQueued: integer(o.queue, 'queue', 100),
    maxReportBytes: integer(o['max-report-bytes'], 'max-report-bytes', 16 * 1024 * 1024, 1),
    scanTimeoutMs: integer(o['scan-timeout'], 'scan-timeout', 900, 1) * 1000,
  };
}

/** `trivy image …` → trivy; `'/usr/bin/grype' …` → grype. */
function commandName(command: string): string {
  const first = command.trim().split(/\s+/)[0] ?? '';
  return basename(first.replace(/^["']|["']$/g, '')) || 'scanner';
}

/** A scan that attached nothing: in the scanner (`scan`) or while pushing the report (`attach`). */
class ScanFailure extends Error {
  constructor(
    message: string,
    readonly stage: 'scan' | 'attach',
    readonly scanMs: number,
  ) {
    super(message);
  }
}

async function scanAndAttach(s: Settings, job: ScanJob): Promise<Record<string, unknown>> {
  const ref = `${s.registry.host}/${job.repository}@${job.subject.digest}`;
  const started = Date.now();
  const outcome = await runScanner({
    command: s.scanner,
    ref,
    env: {
      BERTH_SCAN_REF: ref,
      BERTH_SCAN_REPOSITORY: job.repository,
      BERTH_SCAN_DIGEST: job.subject.digest,
      BERTH_SCAN_MEDIA_TYPE: job.subject.mediaType,
      BERTH_SCAN_TAGS: job.tags.join(','),
      BERTH_EVENT_ID: job.eventId,
    },
    maxReportBytes: s.maxReportBytes,
    timeoutMs: s.scanTimeoutMs,
  });
  const scanMs = Date.now() - started;
  if (!outcome.ok) throw new ScanFailure(outcome.error, 'scan', scanMs);
  try {
    await s.registry.pushBlob(job.repository, EMPTY_CONFIG.data);
    const reportDigest = await s.registry.pushBlob(job.repository, outcome.report);
    const manifest = reportManifest({
      artifactType: s.artifactType,
      subject: job.subject,
      report: { mediaType: s.reportMediaType, digest: reportDigest, size: outcome.report.length },
      scannerName: s.scannerName,
      createdAt: new Date(),
      eventId: job.eventId,
    });
    const pushed = await s.registry.putManifest(job.repository, sha256Digest(manifest), OCI_MANIFEST, manifest);
    return { ref, report: pushed.digest, reportBytes: outcome.report.length, artifactType: s.artifactType, scanMs, subjectProcessed: pushed.subjectProcessed };
  } catch (err) {
    if (err instanceof RegistryError) throw new ScanFailure(err.message, 'attach', scanMs);
    // fetch: TypeError with the socket error as its cause, or TimeoutError.
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? 'no answer in time' : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new ScanFailure(`cannot reach ${s.registry.base.origin}: ${why}`, 'attach', scanMs);
  }
}

async function main(): Promise<void> {
  const s = settingsFrom(process.argv.slice(2));
  const seen = new RecentIds();
  const queue: ScanJob[] = [];
  let running: Promise<void> | undefined;

  const pump = () => {
    if (running) return;
    const job = queue.shift();
    if (!job) return;
    running = scanAndAttach(s, job).then(
      (fields) => {
        log({ level: fields.subjectProcessed ? 'info' : 'warn', msg: 'scan done', eventId: job.eventId, ...fields });
      },
      (err: unknown) => {
        // Forgotten, so that Berth replaying the event scans it again.
        seen.delete(job.eventId);
        const fields = err instanceof ScanFailure ? { stage: err.stage, scanMs: err.scanMs } : {};
        const ref = `${s.registry.host}/${job.repository}@${job.subject.digest}`;
        log({ level: 'error', msg: 'scan failed', eventId: job.eventId, ref, error: err instanceof Error ? err.message : String(err), ...fields });
      },
    );
    void running.finally(() => {
      running = undefined;
      pump();
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      sendJson(res, 200, { queued: queue.length, scanning: running !== undefined });
      return;
    }
    const event = await receiveEvent(req, res, { secrets: s.secrets });
    if (!event) return;
    const job = scanTarget(event);
    if (typeof job === 'string') {
      sendJson(res, 200, { status: 'ignored', reason: job });
      return;
    }
    if (seen.has(job.eventId)) {
      sendJson(res, 200, { status: 'duplicate' });
      return;
    }
    if (running && queue.length >= s.maxQueued) {
      // Berth retries a 503 with backoff: the event waits in Berth's durable queue, not here.
      sendJson(res, 503, { error: `${queue.length} scans are waiting; try later` }, { 'retry-after': '60' });
      return;
    }
    seen.add(job.eventId);
    queue.push(job);
    sendJson(res, 202, { status: 'queued', position: queue.length });
    pump();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log({ level: 'error', msg: 'request failed', error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) sendJson(res, 500, { error: 'the scan hook failed; see its log' });
      else res.destroy();
    });
  });
  await listen(server, s.host, s.port, { registry: s.registry.base.origin, scanner: s.scannerName, artifactType: s.artifactType });
  stopOnSignals(server, async () => {
    const dropped = queue.splice(0).length;
    await running;
    return { dropped };
  });
}

runMain(USAGE, main);
