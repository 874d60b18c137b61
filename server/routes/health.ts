import type { FastifyInstance } from 'fastify';

/** A dependency probe: resolves when reachable, rejects (with a reason) when not. */
export type HealthCheck = (signal: AbortSignal) => Promise<void>;

export interface CheckResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface HealthOptions {
  /** e.g. { storage: () => blobDriver.ping(), metadata: () => metadataStore.ping() } */
  checks: Record<string, HealthCheck>;
  /** Per check; a slow dependency counts as a failed one. */
  timeoutMs?: number;
  /** True once shutdown has begun, so load balancers stop sending new work before the listener closes. */
  isDraining?: () => boolean;
  /** Put each failure's message in the /readyz body; off by default since it may name internal hosts. */
  exposeErrors?: boolean;
}

class CheckTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'CheckTimeoutError';
  }
}

/** Runs every check concurrently, each bounded by the timeout; never rejects. */
export async function runChecks(checks: Record<string, HealthCheck>, timeoutMs = 2000): Promise<CheckResult[]> {
  return Promise.all(
    Object.entries(checks).map(async ([name, check]): Promise<CheckResult> => {
      const started = performance.now();
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // Settle first so the race reports the timeout, not whatever the aborted check rejects with.
          reject(new CheckTimeoutError(timeoutMs));
          controller.abort();
        }, timeoutMs);
      });
      try {
        await Promise.race([Promise.resolve().then(() => check(controller.signal)), timeout]);
        return { name, ok: true, ms: Math.round(performance.now() - started) };
      } catch (err) {
        const message = err instanceof Error ? err.message || err.name : String(err);
        return { name, ok: false, ms: Math.round(performance.now() - started), error: message };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}

/**
 * For start-up: throws one error naming every unreachable dependency, so `berth serve` exits with a
 * message an operator can act on instead of failing on the first request.
 */
export async function assertReady(checks: Record<string, HealthCheck>, timeoutMs = 5000): Promise<void> {
  const failed = (await runChecks(checks, timeoutMs)).filter((r) => !r.ok);
  if (failed.length > 0) {
    throw new Error(`start-up checks failed:\n${failed.map((r) => `  - ${r.name}: ${r.error}`).join('\n')}`);
  }
}

/**
 * GET /healthz: the process is up (no dependency is consulted, so a restart loop is never caused by a
 * slow backend). GET /readyz: storage and metadata answer; 503 names the checks that did not.
 */
export async function healthRoutes(app: FastifyInstance, options: HealthOptions): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 2000;
  app.get('/healthz', { logLevel: 'warn' }, async (_request, reply) => {
    return reply.header('cache-control', 'no-store').send({ status: 'ok' });
  });
  app.get('/readyz', { logLevel: 'warn' }, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    if (options.isDraining?.()) return reply.code(503).send({ status: 'draining', failed: [], checks: {} });
    const results = await runChecks(options.checks, timeoutMs);
    const checks = Object.fromEntries(
      results.map((r) => [r.name, r.ok ? { status: 'ok', ms: r.ms } : { status: 'failed', ms: r.ms, ...(options.exposeErrors ? { error: r.error } : {}) }]),
    );
    const failed = results.filter((r) => !r.ok).map((r) => r.name);
    for (const r of results) if (!r.ok) request.log.warn({ check: r.name, error: r.error, ms: r.ms }, 'readiness check failed');
    return reply.code(failed.length ? 503 : 200).send({ status: failed.length ? 'unavailable' : 'ok', failed, checks });
  });
}
