/**
 * Scheduled housekeeping (retention, README "Retention"):
 * - expired codes, tokens, sessions and interactions are deleted from oidc_models;
 * - dynamically registered clients unused for CLIENT_IDLE_TTL are deleted (REG-11), audited as
 *   client.expired;
 * - the purges other modules contribute (`extraPurges`, wired in src/runtime/server.ts): expired upstream
 *   transactions, browser and admin sessions, and MCP session bindings unused for 24 hours
 *   (src/gateway/sessions.ts, MCP_SESSION_IDLE_MS).
 * Audit rows are never deleted by the application.
 */
import type { Logger } from 'pino';
import type { Audit } from '../audit/audit.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import type { OidcModelStore } from '../store/oidc-models.js';

/** How often housekeeping runs. */
export const MAINTENANCE_INTERVAL_MS = 10 * 60_000;

export interface MaintenanceDeps {
  models: OidcModelStore;
  clientsMeta: ClientsMetaStore;
  audit: Audit;
  log: Logger;
  clientIdleSeconds: number;
  /** extra purges contributed by later steps (transactions, sessions) */
  extraPurges?: Array<() => number>;
  /** called for each expired client before it is deleted (cascade) */
  onClientExpired?: (clientId: string) => void;
}

export function runMaintenance(deps: MaintenanceDeps, now = Date.now()): { expiredRows: number; expiredClients: string[] } {
  let expiredRows = deps.models.purgeExpired();
  for (const purge of deps.extraPurges ?? []) expiredRows += purge();
  const expiredClients = deps.clientsMeta.idleSince(now - deps.clientIdleSeconds * 1000);
  for (const clientId of expiredClients) {
    deps.onClientExpired?.(clientId);
    deps.models.deleteClient(clientId);
    deps.clientsMeta.remove(clientId);
    deps.audit.record({ event: 'client.expired', clientId, reason: 'idle', details: { idle_seconds: deps.clientIdleSeconds } });
  }
  if (expiredRows || expiredClients.length) deps.log.info({ expiredRows, expiredClients: expiredClients.length }, 'housekeeping');
  return { expiredRows, expiredClients };
}

export function scheduleMaintenance(deps: MaintenanceDeps): () => void {
  const run = () => {
    try {
      runMaintenance(deps);
    } catch (err) {
      deps.log.error({ err }, 'housekeeping failed');
    }
  };
  run();
  const timer = setInterval(run, MAINTENANCE_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
