/**
 * What an operator can do to clients and consents, shared by the admin pages, /account and the
 * CLI so every path cascades and audits the same way (DESIGN §2 "Revocation cascades"):
 * - disable a client: it becomes unknown to the authorization server (no new authorization, no
 *   token redemption) and every active consent of it is revoked, with grants and tokens;
 * - enable it again (its old consents stay revoked);
 * - delete a client: the same revocations, then the registration itself;
 * - revoke a consent: grant, P's tokens, the stored upstream token (and U's revocation endpoint).
 */
import type { Audit, AuditEntry } from '../audit/audit.js';
import type { AuditEvent } from '../audit/events.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import type { Consent, ConsentStore } from '../store/consents.js';
import type { OidcModelStore } from '../store/oidc-models.js';
import type { Revocation } from './revocation.js';
import { ERRORS } from '../errors/oauth-error.js';

export type Actor = 'admin' | 'cli' | 'account';

export interface ActorInfo {
  actor: Actor;
  /** who acted (admin's or user's upstream subject); undefined for the CLI */
  subject?: string | undefined;
  requestId?: string | undefined;
  ip?: string | undefined;
}

export interface AdminOpsDeps {
  stores: { models: OidcModelStore; clientsMeta: ClientsMetaStore; consents: ConsentStore; transaction<T>(work: () => Promise<T>): Promise<T> };
  revocation: Revocation;
  audit: Audit;
}

export interface ClientDetail {
  clientId: string;
  metadata: Record<string, unknown>;
  meta: Awaited<ReturnType<ClientsMetaStore['get']>>;
}

type RevokeEvent = 'admin.consent_revoked' | 'account.consent_revoked' | 'cli.consent_revoked';
const EVENTS: Record<Actor, { disabled: AuditEvent; enabled: AuditEvent; deleted: AuditEvent; revoked: RevokeEvent }> = {
  admin: { disabled: 'admin.client_disabled', enabled: 'admin.client_enabled', deleted: 'admin.client_deleted', revoked: 'admin.consent_revoked' },
  cli: { disabled: 'cli.client_disabled', enabled: 'cli.client_enabled', deleted: 'cli.client_deleted', revoked: 'cli.consent_revoked' },
  account: { disabled: 'admin.client_disabled', enabled: 'admin.client_enabled', deleted: 'admin.client_deleted', revoked: 'account.consent_revoked' },
};

/** The audit entry of an action on a client by `who`. */
const clientEntry = (event: AuditEvent, clientId: string, who: ActorInfo, details: Record<string, unknown>) => ({
  event,
  subject: who.subject,
  clientId,
  requestId: who.requestId,
  ip: who.ip,
  details: { ...details, actor: who.actor },
});

/** How many times a deletion revokes approvals that committed during its cascade before it gives up (the caller may retry). */
const DELETE_ROUNDS = 3;
const LATE_APPROVAL = new Error('an approval of this client was recorded during its deletion');

/** What removing a client's rows needs (the admin's deletion here, housekeeping's idle expiry in src/runtime/maintenance.ts). */
export interface ClientRemoval {
  transaction: <T>(work: () => Promise<T>) => Promise<T>;
  clientsMeta: Pick<ClientsMetaStore, 'remove'>;
  models: Pick<OidcModelStore, 'deleteClient'>;
  audit: Pick<Audit, 'record'>;
  /** how many consents of the client are unrevoked (read inside the removal's transaction) */
  unrevokedConsents: (clientId: string) => Promise<number>;
}

/**
 * A client's rows removed with `entry`, its audit row, in one transaction — after its consents'
 * cascade. An approval committed after that cascade listed them (its user was at U; review
 * 2026-12-07) would outlive the client: the client's row goes first — from then on no approval can
 * be recorded (src/consent/record.ts waits for the row, then finds none) — and finding such a
 * consent rolls everything back: false, nothing removed, for the caller to decide.
 */
export async function removeClientRows(deps: ClientRemoval, clientId: string, entry: AuditEntry): Promise<boolean> {
  return deps
    .transaction(async () => {
      await deps.clientsMeta.remove(clientId);
      if (await deps.unrevokedConsents(clientId)) throw LATE_APPROVAL;
      await deps.models.deleteClient(clientId);
      await deps.audit.record(entry);
      return true;
    })
    .catch((err: unknown) => (err === LATE_APPROVAL ? false : Promise.reject(err)));
}

/** Delete a client with every consent of it revoked, cascading again for approvals that land meanwhile; resolves with how many were revoked. */
async function deleteClient(deps: AdminOpsDeps, clientId: string, who: ActorInfo): Promise<number> {
  const { stores, revocation, audit } = deps;
  const removal: ClientRemoval = { ...stores, audit, unrevokedConsents: async (id) => (await stores.consents.unrevokedForClient(id)).length };
  let revokedConsents = 0;
  for (let round = 1; ; round += 1) {
    revokedConsents += await revocation.revokeClient(clientId, 'client_deleted');
    if (await removeClientRows(removal, clientId, clientEntry(EVENTS[who.actor].deleted, clientId, who, { revoked_consents: revokedConsents }))) return revokedConsents;
    // Approvals kept landing between cascade and removal: the operator tries again (503, not a 500: DESIGN §9).
    if (round >= DELETE_ROUNDS) throw ERRORS.temporarilyUnavailable('approvals of this client kept being recorded while it was deleted; try again', 'client_busy');
  }
}

export function createAdminOps(deps: AdminOpsDeps) {
  const { stores, revocation, audit } = deps;

  async function client(clientId: string): Promise<ClientDetail | undefined> {
    const metadata = await stores.models.getClient(clientId);
    const meta = await stores.clientsMeta.get(clientId);
    if (!metadata && !meta) return undefined;
    const { client_secret_sealed: _sealed, ...visible } = (metadata ?? {}) as Record<string, unknown>;
    return { clientId, metadata: visible, meta };
  }

  return {
    client,

    // Disabling, re-enabling and deleting commit with their audit rows, or not at all (the caller
    // can retry). Disabling commits first (no new consent while the cascade runs), then revokes
    // each consent with its own row: one transaction over every consent of a popular client would
    // hold the gateway's generation row for the whole cascade. A cascade cut short (a failure, a
    // crash) is finished by the retry or by housekeeping (src/runtime/maintenance.ts).
    async disableClient(clientId: string, who: ActorInfo): Promise<{ revokedConsents: number } | undefined> {
      if (!(await client(clientId))) return undefined;
      await stores.transaction(async () => {
        await stores.clientsMeta.setDisabled(clientId, Date.now());
        const unrevoked = (await stores.consents.unrevokedForClient(clientId)).length;
        await audit.record(clientEntry(EVENTS[who.actor].disabled, clientId, who, { unrevoked_consents: unrevoked }));
      });
      return { revokedConsents: await revocation.revokeClient(clientId, 'client_disabled') };
    },

    async enableClient(clientId: string, who: ActorInfo): Promise<boolean> {
      if (!(await client(clientId))) return false;
      await stores.transaction(async () => {
        await stores.clientsMeta.setDisabled(clientId, null);
        await audit.record(clientEntry(EVENTS[who.actor].enabled, clientId, who, {}));
      });
      return true;
    },

    async deleteClient(clientId: string, who: ActorInfo): Promise<{ revokedConsents: number } | undefined> {
      if (!(await client(clientId))) return undefined;
      return { revokedConsents: await deleteClient(deps, clientId, who) };
    },

    /** Revoke one consent; `owner` restricts it to that subject's consents (/account). */
    async revokeConsent(consentId: number, who: ActorInfo, owner?: string): Promise<Consent | undefined> {
      // An id from a URL that is no whole number (abc, 1.5, 1e30) names no consent: never a query parameter (DESIGN §9).
      if (!Number.isSafeInteger(consentId) || consentId < 1) return undefined;
      const consent = await stores.consents.byId(consentId);
      if (!consent || (owner !== undefined && consent.subject !== owner)) return undefined;
      await revocation.revokeGrant(consent.grant_id, who.actor === 'account' ? 'user' : who.actor, { event: EVENTS[who.actor].revoked, subject: who.subject });
      return stores.consents.byId(consentId);
    },
  };
}

export type AdminOps = ReturnType<typeof createAdminOps>;
