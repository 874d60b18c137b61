import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { FetchedManifest, OpenBlobAt } from '../../server/registry/replication/endpoint.js';
import { resolveRegistry, type RegistryEntry } from '../../server/registry/replication/registries.js';
import { RemoteEndpoint } from '../../server/registry/replication/remote.js';
import type { ReplicationObservation } from '../../server/registry/replication/service.js';
import type { SessionEvent } from '../../server/registry/replication/session.js';
import { blob, OCI_MANIFEST, type Blob } from '../helpers/oci.js';

/** A RemoteEndpoint over `entry` with the schema's defaults, the password resolved from `env`. */
export function makeRemote(
  entry: Partial<RegistryEntry> & Pick<RegistryEntry, 'urls'>,
  env: NodeJS.ProcessEnv = {},
): { remote: RemoteEndpoint; events: SessionEvent[] } {
  const problems: string[] = [];
  const resolved = resolveRegistry(
    { name: 'target', timeoutSeconds: 30, maxConcurrent: 8, requestsPerSecond: 0, maxWaitSeconds: 30, ...entry },
    'replication.registries.0',
    { env },
    problems,
  );
  if (resolved === undefined) throw new Error(problems.join('\n'));
  const events: SessionEvent[] = [];
  // Retries after 10 ms, so a test of giving up does not wait out the real backoff.
  return { remote: new RemoteEndpoint(resolved, { observer: (event) => events.push(event), backoffMs: 10 }), events };
}

/** A source for putBlob over `data`, recording the offsets it is opened at; it yields 7000-byte pieces so chunks cross them. */
export function bufferSource(data: Buffer): { open: OpenBlobAt; opened: number[] } {
  const opened: number[] = [];
  const open: OpenBlobAt = (offset) => {
    opened.push(offset);
    const pieces: Buffer[] = [];
    for (let at = offset; at < data.length; at += 7000) pieces.push(data.subarray(at, Math.min(data.length, at + 7000)));
    return Promise.resolve(Readable.from(pieces));
  };
  return { open, opened };
}

export function signal(): AbortSignal {
  return AbortSignal.timeout(60_000);
}

export function asFetched(m: Blob, mediaType = OCI_MANIFEST): FetchedManifest {
  return { digest: m.digest, mediaType, size: m.size, bytes: m.data };
}

/** An artifact manifest (an SBOM, say) whose subject is `subject`. */
export function referrerOf(subject: Blob, config: Blob): Blob {
  return blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: config.digest, size: config.size }],
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
    }),
  );
}

export interface Interposer {
  url: string;
  /** Every request seen, as `METHOD path`. */
  seen: string[];
  close(): Promise<void>;
}

/**
 * A loopback HTTP proxy in front of `target`. `hook` may answer a request itself (return true) or
 * let it through with `afterwards`, which runs once the target answered (it may drop the client instead).
 */
export async function startInterposer(
  target: string,
  hook: (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    n: number,
  ) => { handled: true } | { handled: false; afterwards?: (res: http.ServerResponse) => boolean },
): Promise<Interposer> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const decision = hook(req, res, seen.length);
    if (decision.handled) return;
    const upstream = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers, agent }, (answer) => {
      if (decision.afterwards?.(res) === true) {
        answer.resume();
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}

/** What a Berth's replication told its observer, and a wait for the observation a test expects next. */
export class ObservationLog {
  readonly all: ReplicationObservation[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  /** For buildApp's `onReplication`. */
  readonly record = (observation: ReplicationObservation): void => {
    this.all.push(observation);
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (w.check()) w.resolve();
      else this.waiters.push(w);
    }
  };

  /** Resolves once an observation satisfying `match` has been seen (bounded by the test's timeout). */
  seen(match: (o: ReplicationObservation) => boolean): Promise<void> {
    const check = () => this.all.some(match);
    if (check()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ check, resolve }));
  }
}
