// Pull-through cache metrics. Labels are bounded by the configuration: one `upstream` value per
// configured namespace, and HTTP status codes as the upstream sent them (or 'error' when none came).
import { Counter, type Registry } from 'prom-client';
import type { UpstreamEvent } from '../registry/proxy/upstream.js';

export class ProxyMetrics {
  private readonly requests: Counter<'upstream' | 'status'>;
  private readonly tokens: Counter<'upstream' | 'status'>;
  private readonly failovers: Counter<'upstream'>;
  private readonly stale: Counter<'upstream'>;

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
}
