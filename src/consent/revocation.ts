/**
 * Revocation cascades (DESIGN §2 "Revocation cascades", CONS-19, UP-08): revoking a consent —
 * by the user on /account, an admin, the CLI, a newer approval that supersedes it, a disabled or
 * expired client, or oidc-provider itself after refresh-token reuse — revokes, in one database
 * transaction:
 *   the consent row → its grant and every code and token issued under it → the stored upstream
 *   token;
 * the upstream token moving, still sealed, to upstream_revocations in the same transaction; after
 * the commit U is asked to revoke it, and asked again until it answers
 * (src/consent/upstream-revocations.ts). The gateway checks the consent on every request, so the
 * very next call with any token of that grant is refused.
 */
import type { Logger } from 'pino';
import type { Audit } from '../audit/audit.js';
import type { Consent, ConsentStore } from '../store/consents.js';
import type { OidcModelStore } from '../store/oidc-models.js';
import type { UpstreamTokenSet } from '../store/upstream-tokens.js';
import type { UpstreamRevocationStore } from '../store/upstream-revocations.js';
import type { UpstreamClient } from '../upstream/presets.js';
import { failureLevel, isDatabaseBusy } from '../errors/database-unavailable.js';
import { UpstreamRevocations } from './upstream-revocations.js';

export type RevocationReason =
  | 'user' // the user, on /account
  | 'admin' // an admin, on /admin
  | 'cli' // mcp-consent-proxy consents revoke
  | 'superseded' // a newer approval for the same key
  | 'client_disabled'
  | 'client_deleted'
  | 'grant_revoked' // oidc-provider revoked the grant (refresh-token reuse, code replay)
  | 'upstream_invalid_grant' // U no longer honours the upstream grant (AT-22)
  | 'expired'; // housekeeping: the consent expired unrevoked (endExpired; the consent stays, expired)

export interface RevocationDeps {
  /** one transaction around the cascade's writes (src/store/index.ts) */
  transaction: <T>(work: () => Promise<T>) => Promise<T>;
  /** `fn` once the caller's transaction has committed, or at once outside one; `ifUnknown` when its COMMIT's answer was lost (src/store/index.ts) */
  afterCommit: (fn: () => void, ifUnknown?: () => void) => void;
  consents: ConsentStore;
  models: OidcModelStore;
  upstreamRevocations: UpstreamRevocationStore;
  audit: Audit;
  log: Logger;
  /** U, when one is configured; its revocation endpoint is called where it exists */
  upstream?: () => UpstreamClient | undefined;
  /** the clock of the requests to U (retries, giving up); Date.now by default */
  clock?: () => number;
  /** how long a claim on a pending revocation at U holds (src/consent/upstream-revocations.ts CLAIM_MS; at least twice UPSTREAM_TIMEOUT) */
  claimMs?: number;
}

/** What revokeInTransaction revoked: the consent, whether it was active, whether an upstream token is now to be revoked at U. */
export interface RevokedInTransaction {
  consent: Consent | undefined;
  wasActive: boolean;
  /** the grant's upstream token moved to upstream_revocations (U to be asked after the commit) */
  upstreamToken: boolean;
  /** the revocation's time and reason as written: what tells, after a lost COMMIT answer, whether it committed */
  at: number;
  reason: RevocationReason;
}

/** The revocation cascade over the stores, and U's revocation endpoint after the commit. */
export class Revocation {
  /** lost COMMIT answers' reads started and not finished yet */
  private readonly pending = new Set<Promise<void>>();
  private readonly listeners: ((grantId: string) => void)[] = [];
  /** the requests to U, now and retried (housekeeping: `atUpstream.sendDue`) */
  readonly atUpstream: UpstreamRevocations;

  constructor(private readonly deps: RevocationDeps) {
    this.atUpstream = new UpstreamRevocations({
      store: deps.upstreamRevocations,
      audit: deps.audit,
      log: deps.log,
      ...(deps.upstream ? { upstream: deps.upstream } : {}),
      ...(deps.clock ? { clock: deps.clock } : {}),
      ...(deps.claimMs ? { claimMs: deps.claimMs } : {}),
    });
  }

  /**
   * The database part; call inside a transaction. Resolves with what it revoked, and whether an
   * upstream token now waits to be revoked at U (after the commit).
   * Lock order (PostgreSQL): the consent's row, then the upstream token's, then — the first
   * change — the gateway generation's row, as a save of a refreshed upstream token takes the
   * token's row and then the generation's (review 2026-12-08: the cascade moved the generation
   * with the consent first and then waited for the token's row while such a save, holding it,
   * waited for the generation: 40P01). endExpired takes them in the same order.
   */
  async revokeInTransaction(grantId: string, reason: RevocationReason, now = Date.now()): Promise<RevokedInTransaction> {
    const { consents } = this.deps;
    const consent = await consents.lockedByGrant(grantId);
    const upstreamToken = await this.endUpstreamToken(grantId, consent?.client_id, now);
    const wasActive = await consents.revoke(grantId, reason, now);
    await this.deps.models.destroyGrant(grantId);
    return { consent, wasActive, upstreamToken, at: now, reason };
  }

  /** The cascade's first rows (consent, upstream token; PostgreSQL), before oidc-provider deletes the grant's tokens or moves the generation (a replay deadlocked: SECURITY.md). */
  async lockForCascade(grantId: string): Promise<void> {
    await this.deps.consents.lockedByGrant(grantId);
    await this.deps.upstreamRevocations.lockTokenRow(grantId);
  }

  /**
   * The grant's upstream token moves, sealed as it is, to upstream_revocations (U asked after the
   * commit, and again until it answers; whatever key sealed it). Resolves with whether there was one.
   */
  private endUpstreamToken(grantId: string, clientId: string | undefined, now: number): Promise<boolean> {
    return this.deps.upstreamRevocations.moveFromTokens(grantId, clientId, now);
  }

  /**
   * A consent that expired unrevoked (CONS-13: a consent expires; UP-08), ended by housekeeping:
   * the grant's tokens at P and the upstream token P kept for it go, with a `consent.expired` row,
   * and U is asked to revoke that token after the commit, as after every cascade (review
   * 2026-12-07: they stayed, U's token live and kept at P for ever, and an expired consent is no
   * longer on /account to be revoked). The consent itself stays, expired (history). Resolves with
   * whether it ended anything: not for a consent revoked meanwhile (its cascade did it).
   */
  async endExpired(grantId: string, now = Date.now()): Promise<boolean> {
    const ended = await this.deps.transaction(async () => {
      // The consent's row first (FOR UPDATE on PostgreSQL), as a cascade takes it first: one lock
      // order, and a cascade running meanwhile is waited for and then found (review of this change).
      const consent = await this.deps.consents.lockedByGrant(grantId);
      if (!consent || consent.revoked_at !== null || consent.expires_at > now) return undefined;
      const upstreamToken = await this.endUpstreamToken(grantId, consent.client_id, now);
      await this.deps.models.destroyGrant(grantId);
      await this.deps.audit.record({
        event: 'consent.expired',
        subject: consent.subject,
        clientId: consent.client_id,
        details: { grant_id: grantId, consent_id: consent.id, expired_at: consent.expires_at },
      });
      return { consent, wasActive: false, upstreamToken, at: now, reason: 'expired' } satisfies RevokedInTransaction;
    });
    if (!ended) return false;
    this.revokeAtUpstreamAfterCommit(grantId, ended);
    return true;
  }

  /**
   * After the commit of a transaction that called revokeInTransaction: ask U to revoke the
   * upstream token it moved to upstream_revocations (UP-08; audited, awaited by `settled()`, asked
   * again by housekeeping until U answers: src/consent/upstream-revocations.ts). Every
   * cascade goes through here — revokeGrant below and the superseding approval
   * (src/consent/record.ts) — so none leaves a live upstream token behind at U.
   */
  revokeAtUpstreamAfterCommit(grantId: string, result: RevokedInTransaction): void {
    const committed = () => {
      for (const listener of this.listeners) listener(grantId);
      // The row upstream_revocations holds exactly when the cascade committed: none, nothing asked.
      if (result.upstreamToken) this.atUpstream.sendFor(grantId);
    };
    // Called inside an outer transaction (the token endpoint's, src/provider/configuration.ts; the
    // superseding approval's, src/consent/record.ts), the revocation is not committed yet: U is
    // asked only once it is, never when it rolls back. When that COMMIT's answer was lost, a fresh
    // read decides as for a cascade of its own (`outcome`; review 2026-12-07: U was never asked).
    this.deps.afterCommit(committed, () => this.track(this.outcome(result, grantId).then((outcome) => void (outcome !== 'rolled back' && committed()))));
  }

  /**
   * Whether a revocation whose COMMIT's answer was lost committed: a read that waits for any
   * transaction still changing the consent's row (ConsentStore.settledRevocation) finds it revoked
   * with this revocation's time and reason — or not; `unknown` when that read fails too.
   */
  private outcome(cascade: RevokedInTransaction, grantId: string): Promise<'committed' | 'rolled back' | 'unknown'> {
    return this.deps.consents.settledRevocation(grantId).then(
      (consent) => (consent?.revoked_at === cascade.at && consent.revoked_reason === cascade.reason ? 'committed' : 'rolled back'),
      () => 'unknown',
    );
  }

  /** Keep `work` among the upstream revocations `settled()` waits for; a throw in it is reported as a process warning, as an afterCommit callback's is (src/db/sql.ts). */
  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.catch((err: unknown) => process.emitWarning(`an upstream revocation's follow-up threw: ${err instanceof Error ? err.message : String(err)}`)).finally(() => this.pending.delete(work));
  }

  /**
   * `fn(grantId)` after each committed cascade of this process, before U is asked: the gateway's
   * token source revokes at U a refreshed token it holds unsaved for that grant
   * (src/gateway/upstream-token.ts), which the row read here does not have.
   */
  onRevoked(fn: (grantId: string) => void): void {
    this.listeners.push(fn);
  }

  /**
   * Ask U now to revoke a token P never stored (UP-08): a refresh's result that arrived for a grant
   * revoked meanwhile (src/gateway/upstream-token.ts); kept for a retry if U fails. The refresh
   * token when there is one (RFC 7009 §2.1: revoking it ends its access tokens too).
   */
  revokeUnkept(grantId: string, tokens: UpstreamTokenSet, clientId: string | undefined, subject: string): void {
    this.atUpstream.sendUnkept(grantId, tokens, { subject, clientId });
  }

  /**
   * Revoke one consent (by grant id) with the whole cascade. Resolves with whether it was active, once committed and audited.
   * `cascade` (a client's revocations): `onlyIf` is checked first inside the cascade's transaction
   * (false: nothing is revoked, audited or asked of U), and a consent found already revoked —
   * another cascade of the same client got there first — writes no second row.
   */
  async revokeGrant(
    grantId: string,
    reason: RevocationReason,
    actor?: { event?: 'consent.revoked' | 'admin.consent_revoked' | 'account.consent_revoked' | 'cli.consent_revoked'; subject?: string },
    cascade?: { onlyIf?: () => Promise<boolean> },
  ): Promise<boolean> {
    const result = await this.committedCascade(grantId, reason, cascade?.onlyIf);
    if (result === undefined) return false;
    // The revocation has committed: U is asked to revoke its token even when the audit row cannot
    // be written now (the database busy) — a revoked consent must not leave U's token live (UP-08).
    try {
      if (result.consent && (result.wasActive || !cascade)) {
        await this.deps.audit.record({
          event: actor?.event ?? 'consent.revoked',
          reason,
          subject: actor?.subject ?? result.consent.subject,
          clientId: result.consent.client_id,
          details: { grant_id: grantId, consent_id: result.consent.id, was_active: result.wasActive, consent_subject: result.consent.subject },
        });
      }
    } finally {
      this.revokeAtUpstreamAfterCommit(grantId, result);
    }
    return result.wasActive;
  }

  /**
   * The cascade in its own transaction. When the commit fails after the cascade ran, PostgreSQL
   * may still have committed it (the connection lost after COMMIT was sent, its answer never
   * read), or may still be committing it: a read that waits for any transaction still changing
   * the consent's row (ConsentStore.settledRevocation) decides.
   * - Revoked with this cascade's time and reason → it committed: the caller goes on as after
   *   any commit (audit row, U asked: UP-08). Likewise a consent the cascade found already revoked
   *   with no upstream token left: committed or not, nothing depends on it.
   * - Otherwise → it rolled back: the error stands (a retry revokes, and asks U).
   * - The read failing too → unknown, and the error stands: U is asked if the cascade's pending
   *   revocation is in upstream_revocations (written in its transaction: there exactly when it
   *   committed; else housekeeping asks once it can read it). The listeners run all the same (a
   *   refreshed token held unsaved for the grant is revoked at U: a grant that survived fails at
   *   its next refresh and is revoked as AT-22). If the cascade did commit, its audit row is missing.
   * A cascade joined to an outer transaction (the /token request's: refresh-token reuse, code
   * replay) commits with it; that COMMIT's answer lost, revokeAtUpstreamAfterCommit decides the
   * same way.
   */
  private async committedCascade(grantId: string, reason: RevocationReason, onlyIf?: () => Promise<boolean>): Promise<RevokedInTransaction | undefined> {
    const now = Date.now();
    let ran: RevokedInTransaction | undefined;
    try {
      return await this.deps.transaction(async () => (onlyIf && !(await onlyIf()) ? undefined : (ran = await this.revokeInTransaction(grantId, reason, now))));
    } catch (err) {
      if (!ran) throw err;
      const cascade = ran;
      if (!cascade.wasActive && !cascade.upstreamToken) return cascade;
      const after = await this.outcome(cascade, grantId);
      if (after === 'committed') return cascade;
      if (after === 'unknown') this.revokeAtUpstreamAfterCommit(grantId, cascade);
      throw err;
    }
  }

  /** Resolves when every upstream revocation started so far has finished, with those they started (a lost COMMIT's read, then U) (the CLI waits). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
    await this.atUpstream.settled();
  }

  /**
   * Revoke every active consent of a client (disable, delete, idle expiry, and housekeeping
   * finishing a disabling cut short), each with its own cascade and audit row. A consent whose
   * revocation fails does not stop the others — but the database busy or unreachable does (every
   * other consent would wait out the same bound): the first failure is thrown once the loop ends,
   * and the caller's retry finds only the consents left. `onlyIf(grantId)` is checked in each
   * consent's transaction (housekeeping: the client still disabled, the consent older than that).
   */
  async revokeClient(clientId: string, reason: 'client_disabled' | 'client_deleted', onlyIf?: (grantId: string) => Promise<boolean>): Promise<number> {
    let n = 0;
    let first: unknown;
    for (const consent of await this.deps.consents.unrevokedForClient(clientId)) {
      try {
        if (await this.revokeGrant(consent.grant_id, reason, undefined, onlyIf ? { onlyIf: () => onlyIf(consent.grant_id) } : {})) n += 1;
      } catch (err) {
        this.deps.log[failureLevel(err)]({ err, clientId, grantId: consent.grant_id }, 'a consent of the client could not be revoked; the next attempt revokes it');
        first ??= err;
        if (isDatabaseBusy(err)) break;
      }
    }
    if (first !== undefined) throw first;
    return n;
  }
}

export function createRevocation(deps: RevocationDeps): Revocation {
  return new Revocation(deps);
}
