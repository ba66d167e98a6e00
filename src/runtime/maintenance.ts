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
  extraPurges?: Array<() => Promise<number>>;
  /** called for each expired client before it is deleted (cascade) */
  onClientExpired?: (clientId: string) => Promise<unknown>;
}

export async function runMaintenance(deps: MaintenanceDeps, now = Date.now()): Promise<{ expiredRows: number; expiredClients: string[] }> {
  let expiredRows = await deps.models.purgeExpired();
  for (const purge of deps.extraPurges ?? []) expiredRows += await purge();
  const expiredClients = await deps.clientsMeta.idleSince(now - deps.clientIdleSeconds * 1000);
  for (const clientId of expiredClients) {
    await deps.onClientExpired?.(clientId);
    await deps.models.deleteClient(clientId);
    await deps.clientsMeta.remove(clientId);
    await deps.audit.record({ event: 'client.expired', clientId, reason: 'idle', details: { idle_seconds: deps.clientIdleSeconds } });
  }
  if (expiredRows || expiredClients.length) deps.log.info({ expiredRows, expiredClients: expiredClients.length }, 'housekeeping');
  return { expiredRows, expiredClients };
}

/** Housekeeping now and every MAINTENANCE_INTERVAL_MS (one run at a time); the returned function stops it and resolves once no run is under way. */
export function scheduleMaintenance(deps: MaintenanceDeps): () => Promise<void> {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= runMaintenance(deps)
      .then(
        () => undefined,
        (err: unknown) => deps.log.error({ err }, 'housekeeping failed'),
      )
      .finally(() => (running = undefined));
  };
  run();
  const timer = setInterval(run, MAINTENANCE_INTERVAL_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
