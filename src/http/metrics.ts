/**
 * Prometheus metrics (prom-client) at `/metrics`: requests by route and status, consent
 * decisions, token issuance, the gateway's latency, upstream refreshes — the last three fed from
 * the audit log's events, so a metric never disagrees with the record — the upstream revocations
 * still pending (read from the database at each scrape), plus Node's defaults.
 * Guarded by METRICS_TOKEN when set, compared in constant time (`metricsAuthorized`); open
 * otherwise, with a warning at start when PUBLIC_URL is not loopback (src/config/load.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Does this Authorization header carry METRICS_TOKEN? Compared in constant time: both sides are
 * hashed to SHA-256 first, so timingSafeEqual always sees equal lengths and the time taken says
 * nothing about how much of the token was right, or how long it is.
 */
export function metricsAuthorized(authorization: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const expected = createHash('sha256').update(`Bearer ${token}`).digest();
  const given = createHash('sha256')
    .update(authorization ?? '')
    .digest();
  return timingSafeEqual(given, expected);
}

/** The grant types P issues tokens for: the only values of a rejection's `grant_type` label besides `other` and `""`. */
const GRANT_TYPE_LABELS = new Set(['authorization_code', 'refresh_token']);

/**
 * The `grant_type` label of a refused token request: the grant type its token.rejected row
 * records (the request's), `other` for one P does not support — a request-chosen string must not
 * make a series of its own — and `""` when it names none (a refused revocation).
 */
function rejectedGrantType(details: string | null | undefined): string {
  if (!details) return '';
  let grantType: unknown;
  try {
    grantType = (JSON.parse(details) as { grant_type?: unknown }).grant_type;
  } catch {
    return '';
  }
  if (grantType === undefined || grantType === null) return '';
  return typeof grantType === 'string' && GRANT_TYPE_LABELS.has(grantType) ? grantType : 'other';
}

export interface MetricsSources {
  /** how many upstream tokens P let go of wait for U to revoke them (upstream_revocations; the whole database's, the same on every replica) */
  pendingUpstreamRevocations?: () => Promise<number>;
}

export function createMetrics(sources: MetricsSources = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mcp_proxy_' });
  const { pendingUpstreamRevocations } = sources;
  if (pendingUpstreamRevocations) {
    new Gauge({
      name: 'mcp_proxy_upstream_revocations_pending',
      help: 'Upstream tokens P let go of that U has not yet confirmed revoking (retried by housekeeping; SECURITY.md "Revocation at U")',
      registers: [registry],
      async collect() {
        // The database cannot be read: NaN (unknown), never a count that could read as "none
        // pending" (review 2026-12-08: it kept 0); the rest of /metrics answers.
        await pendingUpstreamRevocations().then(
          (n) => this.set(n),
          () => this.set(Number.NaN),
        );
      },
    });
  }
  const httpRequests = new Counter({ name: 'mcp_proxy_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'method', 'status'] as const, registers: [registry] });
  const consent = new Counter({
    name: 'mcp_proxy_consent_decisions_total',
    help: 'Consent page decisions (shown, approved, denied, skipped, rejected)',
    labelNames: ['decision', 'reason'] as const,
    registers: [registry],
  });
  const tokens = new Counter({ name: 'mcp_proxy_tokens_total', help: 'Token endpoint outcomes', labelNames: ['outcome', 'grant_type'] as const, registers: [registry] });
  const refreshes = new Counter({ name: 'mcp_proxy_upstream_refreshes_total', help: 'Refreshes of upstream tokens', labelNames: ['outcome'] as const, registers: [registry] });
  const audit = new Counter({ name: 'mcp_proxy_audit_events_total', help: 'Audit log records by event', labelNames: ['event'] as const, registers: [registry] });
  const gateway = new Histogram({
    name: 'mcp_proxy_gateway_request_duration_seconds',
    help: 'Gateway requests: time to the upstream answer (headers), by resource and status',
    labelNames: ['resource', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  return {
    registry,
    observeRequest(route: string, method: string, status: number): void {
      httpRequests.inc({ route, method, status: String(status) });
    },
    observeGateway(resource: string, status: number, seconds: number): void {
      gateway.observe({ resource: new URL(resource).pathname, status: String(status) }, seconds);
    },
    observeAudit(row: { event: string; reason: string | null; details?: string | null }): void {
      audit.inc({ event: row.event });
      const [area, outcome] = row.event.split('.') as [string, string];
      if (area === 'consent' && outcome !== 'recorded' && outcome !== 'revoked' && outcome !== 'expired') consent.inc({ decision: outcome, reason: row.reason ?? '' });
      else if (row.event === 'token.issued') tokens.inc({ outcome: 'issued', grant_type: row.reason ?? 'unknown' });
      else if (row.event === 'token.rejected') tokens.inc({ outcome: 'rejected', grant_type: rejectedGrantType(row.details) });
      else if (row.event === 'upstream.token_refreshed') refreshes.inc({ outcome: 'refreshed' });
      else if (row.event === 'upstream.refresh_failed') refreshes.inc({ outcome: row.reason ?? 'failed' });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
