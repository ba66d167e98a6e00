/**
 * Asking U to revoke the upstream tokens P has let go of (UP-08; RFC 7009 §2), until U has
 * answered. A revocation cascade moves its grant's sealed upstream token to upstream_revocations in
 * its own transaction (src/consent/revocation.ts); after the commit this process asks U for that
 * row at once (`sendFor`), and housekeeping asks for every row still due (`sendDue`): U refused or
 * was unreachable, the process died before asking, the COMMIT's answer was lost, or the token is
 * sealed under a SECRET_KEY this process does not have (another replica's, mid-rotation).
 *
 * - A row is claimed before U is asked (UpstreamRevocationStore.claim: only while as read and due),
 *   and only the claim's holder gives it back or deletes it: one request per attempt, whichever
 *   processes read it.
 * - U answered (RFC 7009 §2.2: 200 also for a token it no longer knows): the row goes, audited as
 *   `upstream.token_revoked` — silently when U has no revocation endpoint (nothing to ask).
 * - U failed: due again RETRY_FIRST_MS later, doubling to RETRY_MAX_MS.
 * - Not asked here — the token sealed under a key this process does not have, or no U configured
 *   in this process: given back unasked (not counted), due again RETRY_FIRST_MS later, for a
 *   process that can.
 * - GIVE_UP_MS after P let the token go — or at once for a token that can never be opened (its
 *   sealed value damaged) — the row goes, audited as `upstream.revocation_abandoned` and logged as
 *   an error: revoke it at U by hand.
 * - An access token with no refresh token that has expired is dead at U already: the row goes
 *   without asking.
 */
import type { Logger } from 'pino';
import type { Audit } from '../audit/audit.js';
import type { Claim, PendingRevocation, UpstreamRevocationStore } from '../store/upstream-revocations.js';
import type { UpstreamTokenSet } from '../store/upstream-tokens.js';
import type { UpstreamClient } from '../upstream/presets.js';
import { UnknownSealingKeyError } from '../crypto/keys.js';
import { failureLevel, isDatabaseBusy } from '../errors/database-unavailable.js';

/** The first retry after a failed request to U; each further one waits twice as long, up to RETRY_MAX_MS. Housekeeping (every 10 minutes) sends what is due. */
export const RETRY_FIRST_MS = 10 * 60_000;
export const RETRY_MAX_MS = 6 * 60 * 60_000;
/** How long after P let a token go U is still asked to revoke it. */
export const GIVE_UP_MS = 7 * 24 * 60 * 60_000;
/** A claimed row is due again this long after its claim if its process never finished (died while asking U); at least twice UPSTREAM_TIMEOUT (`claimMs`). */
export const CLAIM_MS = 5 * 60_000;
/** At most this many rows per housekeeping run, for at most this long (U asked one at a time: a backlog must not become a burst at U). */
export const SEND_DUE_PER_RUN = 100;
export const SEND_DUE_FOR_MS = 60_000;

export interface UpstreamRevocationDeps {
  store: UpstreamRevocationStore;
  audit: Audit;
  log: Logger;
  /** U, when one is configured */
  upstream?: () => UpstreamClient | undefined;
  clock?: () => number;
  /** how long a claim holds (CLAIM_MS by default; give at least twice U's request timeout) */
  claimMs?: number;
}

/** A row handled: U revoked it; U asked and failed; not asked here (`keyId`: sealed under a key this process lacks); done with unasked; another process's. */
type Outcome = { done: 'revoked' | 'failed' | 'dropped' | 'not claimed' } | { done: 'not asked'; keyId?: string };

export function retryDelay(attempts: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, attempts - 1));
}

class NotAskedHere extends Error {
  constructor(
    message: string,
    readonly keyId?: string,
  ) {
    super(message);
  }
}

export class UpstreamRevocations {
  /** requests to U started and not finished yet */
  private readonly pending = new Set<Promise<unknown>>();
  private readonly now: () => number;
  private stopping = false;

  constructor(private readonly deps: UpstreamRevocationDeps) {
    this.now = deps.clock ?? (() => Date.now());
  }

  /** After a cascade's commit: ask U now for the grant's pending rows (none when the cascade rolled back). */
  sendFor(grantId: string): void {
    const work = async () => {
      for (const row of await this.deps.store.forGrant(grantId, this.now())) {
        const outcome = await this.send(row);
        if (outcome.done === 'not asked') this.notAskedWarning([row.grant_id], outcome.keyId === undefined ? [] : [outcome.keyId]);
      }
    };
    this.track(work());
  }

  /**
   * Housekeeping: every row due, oldest first, at most SEND_DUE_PER_RUN for at most
   * SEND_DUE_FOR_MS (and not past `stop()`). A row that fails for a reason of its own does not stop
   * the others; the database failing does. Resolves with how many U revoked.
   */
  async sendDue(): Promise<number> {
    const until = this.now() + SEND_DUE_FOR_MS;
    let revoked = 0;
    const notAsked: string[] = [];
    const keyIds = new Set<string>();
    for (const row of await this.deps.store.due(this.now(), SEND_DUE_PER_RUN)) {
      if (this.stopping || this.now() > until) break;
      try {
        const outcome = await this.send(row);
        if (outcome.done === 'revoked') revoked += 1;
        if (outcome.done === 'not asked') {
          notAsked.push(row.grant_id);
          if (outcome.keyId !== undefined) keyIds.add(outcome.keyId);
        }
      } catch (err) {
        if (isDatabaseBusy(err)) throw err;
        this.deps.log[failureLevel(err)]({ err, grantId: row.grant_id }, 'a pending upstream revocation could not be handled; the next run tries again');
      }
    }
    if (notAsked.length) this.notAskedWarning(notAsked, [...keyIds]); // one line a run, not one a row
    return revoked;
  }

  /**
   * A token P never stored (a refresh's result that arrived for a grant revoked meanwhile,
   * src/gateway/upstream-token.ts): U asked now; kept in upstream_revocations if that fails.
   */
  sendUnkept(grantId: string, tokens: UpstreamTokenSet, who: { subject: string; clientId?: string | undefined }): void {
    const work = async () => {
      try {
        await this.ask(grantId, tokens, who.clientId, who.subject, 1);
        return;
      } catch (err) {
        const now = this.now();
        try {
          await this.deps.store.add(grantId, who, tokens, now, now + retryDelay(1), messageOf(err));
        } catch (saveErr) {
          // Held in memory only: nothing left to retry from.
          this.deps.log.error(
            { err: messageOf(err), saveErr: messageOf(saveErr), grantId },
            'U did not revoke an upstream token P never stored, and it could not be kept for a retry: revoke it at U by hand',
          );
          return;
        }
        this.deps.log.warn({ err: messageOf(err), grantId }, 'upstream token revocation failed; asked again later');
      }
    };
    this.track(work());
  }

  /** No further rows in a housekeeping run under way (shutdown); requests to U already sent finish (`settled`). */
  stop(): void {
    this.stopping = true;
  }

  /** Whether `stop()` was called: housekeeping's other loops that ask U stop too (endExpiredConsents). */
  get stopped(): boolean {
    return this.stopping;
  }

  /** Resolves when every request to U started so far has finished. */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  private async send(row: PendingRevocation): Promise<Outcome> {
    const { store } = this.deps;
    const now = this.now();
    const claim = await store.claim(row, now, now + (this.deps.claimMs ?? CLAIM_MS));
    if (!claim) return { done: 'not claimed' };
    let tokens: UpstreamTokenSet;
    try {
      if (!this.deps.upstream?.()) throw new NotAskedHere('no upstream is configured in this process');
      tokens = this.openRow(row);
    } catch (err) {
      if (!(err instanceof NotAskedHere)) return this.abandon(row, claim, row.attempts, `its sealed token cannot be opened: ${messageOf(err)}`);
      if (now - row.created_at >= GIVE_UP_MS) return this.abandon(row, claim, row.attempts, err.message);
      await store.later(claim, now + RETRY_FIRST_MS, err.message, false);
      return { done: 'not asked', ...(err.keyId === undefined ? {} : { keyId: err.keyId }) };
    }
    if (!tokens.refreshToken && tokens.expiresAt !== undefined && tokens.expiresAt <= now) {
      await store.remove(claim); // expired, nothing to renew it: dead at U already
      return { done: 'dropped' };
    }
    const attempt = row.attempts + 1;
    try {
      await this.ask(row.grant_id, tokens, row.client_id ?? undefined, row.subject, attempt);
    } catch (err) {
      if (now - row.created_at >= GIVE_UP_MS) return this.abandon(row, claim, attempt, messageOf(err));
      await store.later(claim, now + retryDelay(attempt), messageOf(err), true);
      this.deps.log.warn({ err: messageOf(err), grantId: row.grant_id, attempts: attempt }, 'upstream token revocation failed; asked again later');
      return { done: 'failed' };
    }
    await store.remove(claim);
    return { done: 'revoked' };
  }

  private openRow(row: PendingRevocation): UpstreamTokenSet {
    try {
      return this.deps.store.open(row);
    } catch (err) {
      if (err instanceof UnknownSealingKeyError) throw new NotAskedHere(`sealed under key ${err.keyId}, which this process does not have`, err.keyId);
      throw err;
    }
  }

  /** U asked (the refresh token when there is one: RFC 7009 §2.1, revoking it ends its access tokens too); a success audited. */
  private async ask(grantId: string, tokens: UpstreamTokenSet, clientId: string | undefined, subject: string, attempt: number): Promise<void> {
    const upstream = this.deps.upstream?.();
    if (!upstream) throw new Error('no upstream is configured in this process');
    const hint = tokens.refreshToken ? 'refresh_token' : 'access_token';
    if (!(await upstream.revoke(tokens.refreshToken ?? tokens.accessToken, hint))) return; // U has no revocation endpoint
    await this.deps.audit
      .record({ event: 'upstream.token_revoked', clientId, subject, details: { grant_id: grantId, token_type_hint: hint, attempt } })
      .catch((err: unknown) => this.deps.log[failureLevel(err)]({ err, grantId }, 'U revoked an upstream token, but its audit row could not be written'));
  }

  private async abandon(row: PendingRevocation, claim: Claim, attempts: number, error: string): Promise<Outcome> {
    await this.deps.audit.record({
      event: 'upstream.revocation_abandoned',
      clientId: row.client_id ?? undefined,
      subject: row.subject,
      details: { grant_id: row.grant_id, attempts, since: row.created_at, error },
    });
    await this.deps.store.remove(claim);
    this.deps.log.error({ grantId: row.grant_id, attempts, error }, 'U was not asked, or did not answer, to revoke an upstream token P let go of: revoke it at U by hand');
    return { done: 'dropped' };
  }

  /** `keyIds`: the keys of the tokens this process cannot open (none: no U configured here). */
  private notAskedWarning(grantIds: string[], keyIds: string[]): void {
    const why = keyIds.length ? 'sealed under a SECRET_KEY this process does not have' : 'no upstream is configured in this process';
    const see = keyIds.length ? ' (README "Rotating SECRET_KEY")' : '';
    this.deps.log.warn({ grantIds, ...(keyIds.length ? { keyIds } : {}) }, `upstream token revocations not sent: ${why}; left for a process that can${see}`);
  }

  private track(work: Promise<unknown>): void {
    const tracked = work.catch((err: unknown) => this.deps.log[failureLevel(err)]({ err }, 'an upstream revocation could not be sent now; housekeeping sends it'));
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }
}

/** An OAuth error code as U may send it (RFC 6749 §5.2 codes, and vendors' own): shown only when it is one. */
const OAUTH_ERROR_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * What last_error and the log keep of a failure: its message and, for U's answer, its HTTP status
 * and OAuth error code — never U's error_description or the rest of its body, which may echo the
 * token. oauth4webapi's ResponseBodyError and WWWAuthenticateChallengeError carry U's status as
 * their own `status` (their `cause` is U's JSON body, or the challenges: a `status` there is U's
 * text), ResponseBodyError U's code as `error`; openid-client's error for an answer that is no
 * OAuth error has U's Response as its `cause`.
 */
function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 500);
  const e = err as Error & { status?: unknown; error?: unknown };
  const status = typeof e.status === 'number' ? e.status : e.cause instanceof Response ? e.cause.status : undefined;
  const code = typeof e.error === 'string' && OAUTH_ERROR_CODE.test(e.error) ? e.error : undefined;
  const answer = [status === undefined ? undefined : `HTTP ${status}`, code].filter(Boolean).join(' ');
  return `${err.message}${answer ? ` (${answer})` : ''}`.slice(0, 500);
}
