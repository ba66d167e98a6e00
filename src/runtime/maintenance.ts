/**
 * Scheduled housekeeping (retention, README "Retention"):
 * - expired codes, tokens, sessions and interactions are deleted from oidc_models;
 * - dynamically registered clients unused for CLIENT_IDLE_TTL are deleted (REG-11), audited as
 *   client.expired;
 * - a disabled client's consents left unrevoked (its disabling's cascade cut short by a failure
 *   or a crash: src/consent/operations.ts) are revoked, each audited as consent.revoked;
 * - a consent that expired unrevoked is ended: its grant's tokens and the upstream token P kept
 *   for it deleted, U asked to revoke that one, audited as consent.expired (Revocation.endExpired);
 * - U is asked again to revoke the upstream tokens P let go of that it has not yet revoked
 *   (upstream_revocations: src/consent/upstream-revocations.ts);
 * - the purges other modules contribute (`extraPurges`, wired in src/runtime/server.ts): expired upstream
 *   transactions, browser and admin sessions, and MCP session bindings unused for 24 hours
 *   (src/gateway/sessions.ts, MCP_SESSION_IDLE_MS).
 * Audit rows are never deleted by the application.
 *
 * One replica at a time (DESIGN §8, issue 11): a run holds the lock `maintenance` for its whole
 * length (`exclusive`: Sql.tryExclusive — on PostgreSQL a session-level pg_try_advisory_lock, not
 * a transaction, as a run audits through the group commit and calls U's revocation endpoint, which
 * must not happen inside an open transaction: src/db/sql.ts). A replica whose timer fires while
 * another one's run holds it skips its run (`skipped`), so two runs never both see — and both
 * delete and audit — the same expired client; the next run of either replica does what is left.
 * It skips too when every lock connection of its own process is in use (upstream refreshes under
 * way: src/db/pg-locks.ts).
 */
import type { Logger } from 'pino';
import type { Held } from '../db/sql.js';
import type { Audit } from '../audit/audit.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import type { OidcModelStore } from '../store/oidc-models.js';
import { failureLevel } from '../errors/database-unavailable.js';
import { removeClientRows } from '../consent/operations.js';
import type { ConsentStore } from '../store/consents.js';
import type { Revocation } from '../consent/revocation.js';

/** At most this many expired consents are ended per housekeeping run, for at most this long (each asks U, one at a time); the next run goes on. */
export const END_EXPIRED_PER_RUN = 100;
export const END_EXPIRED_FOR_MS = 60_000;

/**
 * End the consents that expired unrevoked (Revocation.endExpired), one at a time with each U
 * revocation awaited — a backlog must not become a burst at U — and for at most
 * END_EXPIRED_FOR_MS a run: a slow or unreachable U must not hold housekeeping's lock for a
 * hundred timeouts. Resolves with how many were ended.
 */
export async function endExpiredConsents(
  consents: Pick<ConsentStore, 'expiredKeepingUpstreamToken'>,
  revocation: Pick<Revocation, 'endExpired' | 'settled'>,
  clock: () => number = Date.now,
  stopped: () => boolean = () => false,
): Promise<number> {
  let ended = 0;
  const until = clock() + END_EXPIRED_FOR_MS;
  for (const grantId of await consents.expiredKeepingUpstreamToken(clock(), END_EXPIRED_PER_RUN)) {
    if (stopped()) break; // shutting down (review 2026-12-08: a run of a minute outlasted a 30 s stop timeout)
    if (await revocation.endExpired(grantId)) ended += 1;
    await revocation.settled();
    if (clock() > until) break;
  }
  return ended;
}

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
  /** revokes the consents a disabling left unrevoked (its cascade cut short by a failure or a crash); resolves with how many */
  finishDisabled?: () => Promise<number>;
  /** ends the consents that expired unrevoked: their grants' tokens and upstream tokens (U asked to revoke them); resolves with how many */
  endExpired?: () => Promise<number>;
  /** asks U again for the upstream revocations due (UpstreamRevocations.sendDue); resolves with how many U revoked */
  sendUpstreamRevocations?: () => Promise<number>;
  /** called for each expired client before it is deleted (cascade) */
  onClientExpired?: (clientId: string) => Promise<unknown>;
  /** how many consents of the client are unrevoked (read inside its deletion's transaction) */
  unrevokedConsents?: (clientId: string) => Promise<number>;
  /** one transaction around an expired client's deletion and its audit row (Stores.transaction) */
  transaction: <T>(work: () => Promise<T>) => Promise<T>;
  /** run the job unless another replica's run holds the lock (Sql.tryExclusive); absent: always run */
  exclusive?: <T>(name: string, fn: () => Promise<T>) => Promise<Held<T>>;
}

export interface MaintenanceResult {
  expiredRows: number;
  expiredClients: string[];
  /** another replica's run held the lock (or this process had no lock connection free): this one did nothing */
  skipped: boolean;
}

export async function runMaintenance(deps: MaintenanceDeps, now = Date.now()): Promise<MaintenanceResult> {
  if (!deps.exclusive) return { ...(await housekeeping(deps, now)), skipped: false };
  const held = await deps.exclusive('maintenance', () => housekeeping(deps, now));
  if (held.acquired) return { ...held.value, skipped: false };
  deps.log.debug('housekeeping skipped: another replica is running it, or every lock connection of this process is in use');
  return { expiredRows: 0, expiredClients: [], skipped: true };
}

async function housekeeping(deps: MaintenanceDeps, now: number): Promise<{ expiredRows: number; expiredClients: string[] }> {
  let expiredRows = await deps.models.purgeExpired();
  for (const purge of deps.extraPurges ?? []) expiredRows += await purge();
  // A failure here (the database busy) must not stop the rest of housekeeping: logged, tried next run.
  const finishedConsents = await (deps.finishDisabled?.() ?? Promise.resolve(0)).catch((err: unknown) => {
    deps.log[failureLevel(err)]({ err }, 'housekeeping could not finish the revocations of disabled clients; the next run tries again');
    return 0;
  });
  const endedConsents = await (deps.endExpired?.() ?? Promise.resolve(0)).catch((err: unknown) => {
    deps.log[failureLevel(err)]({ err }, 'housekeeping could not end every expired consent; the next run tries again');
    return 0;
  });
  const upstreamRevoked = await (deps.sendUpstreamRevocations?.() ?? Promise.resolve(0)).catch((err: unknown) => {
    deps.log[failureLevel(err)]({ err }, 'housekeeping could not ask U for every pending upstream revocation; the next run asks again');
    return 0;
  });
  const expiredClients: string[] = [];
  for (const clientId of await deps.clientsMeta.idleSince(now - deps.clientIdleSeconds * 1000)) {
    await deps.onClientExpired?.(clientId);
    // The deletion and its audit row commit together (a refused row leaves the client for the next
    // run), and not over an approval recorded after the cascade (src/consent/operations.ts).
    const entry = { event: 'client.expired', clientId, reason: 'idle', details: { idle_seconds: deps.clientIdleSeconds } } as const;
    const deleted = await removeClientRows({ ...deps, unrevokedConsents: deps.unrevokedConsents ?? (async () => 0) }, clientId, entry);
    if (deleted) expiredClients.push(clientId);
    else {
      // Approved just now: in use after all, so no longer idle (its new consent stands).
      await deps.clientsMeta.touch(clientId, now);
      deps.log.info({ clientId }, 'an idle client was approved while it expired: kept');
    }
  }
  if (expiredRows || expiredClients.length || finishedConsents || endedConsents || upstreamRevoked) {
    deps.log.info({ expiredRows, expiredClients: expiredClients.length, finishedConsents, endedConsents, upstreamRevoked }, 'housekeeping');
  }
  return { expiredRows, expiredClients };
}

/** Housekeeping now and every MAINTENANCE_INTERVAL_MS (one run at a time); the returned function stops it and resolves once no run is under way. */
export function scheduleMaintenance(deps: MaintenanceDeps): () => Promise<void> {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= runMaintenance(deps)
      .then(
        () => undefined,
        (err: unknown) => deps.log[failureLevel(err)]({ err }, 'housekeeping failed'),
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
