// Pull-through cache metrics. Labels are bounded by the configuration: one `upstream` value per
// configured namespace, and HTTP status codes as the upstream sent them (or 'error' when none came).
// Fill metrics have no upstream label: a fill is of a digest, shared by every namespace that asks for it.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { FillEvent } from '../registry/proxy/fills.js';
import type { UpstreamEvent } from '../registry/proxy/upstream.js';

export class ProxyMetrics {
  private readonly requests: Counter<'upstream' | 'status'>;
  private readonly tokens: Counter<'upstream' | 'status'>;
  private readonly failovers: Counter<'upstream'>;
  private readonly stale: Counter<'upstream'>;
  private readonly fillsStarted: Counter<'how'>;
  private readonly fillsFinished: Counter<'outcome'>;
  private readonly fillRequests: Counter<'from'>;
  private readonly fillBytes: Counter;
  private readonly fillsInFlight: Gauge;
  private readonly spoolBytes: Gauge;

  constructor(registry: Registry, upstreams: readonly string[]) {
    this.requests = new Counter({
      name: 'berth_proxy_upstream_requests_total',
      help: "HTTP requests to proxy upstreams, by upstream namespace and the upstream's status ('error': no answer).",
      labelNames: ['upstream', 'status'] as const,
      registers: [registry],
    });
    this.tokens = new Counter({
      name: 'berth_proxy_upstream_token_fetches_total',
      help: "Token fetches from proxy upstreams' token services, by upstream and status.",
      labelNames: ['upstream', 'status'] as const,
      registers: [registry],
    });
    this.failovers = new Counter({
      name: 'berth_proxy_upstream_failovers_total',
      help: "Moves to an upstream's next URL because one was unavailable.",
      labelNames: ['upstream'] as const,
      registers: [registry],
    });
    this.stale = new Counter({
      name: 'berth_proxy_stale_served_total',
      help: 'Cached manifests served with a Warning because their upstream was unavailable.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    });
    this.fillsStarted = new Counter({
      name: 'berth_proxy_fills_started_total',
      help: "Blob fills this process started: 'fresh', or 'resumed' from a dead holder's committed chunks.",
      labelNames: ['how'] as const,
      registers: [registry],
    });
    this.fillsFinished = new Counter({
      name: 'berth_proxy_fills_finished_total',
      help: "Blob fills of this process that ended: 'committed' (verified and stored), 'failed', or 'lease_lost' (taken over by another process).",
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    this.fillRequests = new Counter({
      name: 'berth_proxy_fill_requests_total',
      help: "Requests for a blob not cached yet, by how they were served: 'started' the fill, joined one in this process ('local') or another ('remote'), or found it stored ('storage').",
      labelNames: ['from'] as const,
      registers: [registry],
    });
    this.fillBytes = new Counter({
      name: 'berth_proxy_fill_fetched_bytes_total',
      help: "Bytes this process's fills read from upstreams.",
      registers: [registry],
    });
    this.fillsInFlight = new Gauge({
      name: 'berth_proxy_fills_in_flight',
      help: 'Blob fills running in this process.',
      registers: [registry],
    });
    this.spoolBytes = new Gauge({
      name: 'berth_proxy_fill_spool_bytes',
      help: "Bytes this process's fills in flight spool, counted against proxy.maxFillBytes.",
      registers: [registry],
    });
    for (const how of ['fresh', 'resumed']) this.fillsStarted.inc({ how }, 0);
    for (const outcome of ['committed', 'failed', 'lease_lost']) this.fillsFinished.inc({ outcome }, 0);
    for (const from of ['started', 'local', 'remote', 'storage']) this.fillRequests.inc({ from }, 0);
    for (const upstream of upstreams) {
      this.failovers.inc({ upstream }, 0);
      this.stale.inc({ upstream }, 0);
    }
  }

  recordUpstream(event: UpstreamEvent): void {
    const status = event.status === undefined ? 'error' : String(event.status);
    if (event.kind === 'request') this.requests.inc({ upstream: event.upstream, status });
    else if (event.kind === 'token') this.tokens.inc({ upstream: event.upstream, status });
    else if (event.kind === 'failover') this.failovers.inc({ upstream: event.upstream });
  }

  recordStale(upstream: string): void {
    this.stale.inc({ upstream });
  }

  recordFill(event: FillEvent): void {
    switch (event.kind) {
      case 'started':
        this.fillsStarted.inc({ how: event.how });
        this.fillsInFlight.inc();
        return;
      case 'finished':
        this.fillsFinished.inc({ outcome: event.outcome });
        this.fillBytes.inc(event.fetchedBytes);
        this.fillsInFlight.dec();
        return;
      case 'served':
        this.fillRequests.inc({ from: event.from });
        return;
      case 'spool':
        this.spoolBytes.inc(event.deltaBytes);
        return;
    }
  }
}
