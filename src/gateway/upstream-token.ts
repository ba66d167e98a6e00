/**
 * U's token for a grant, kept usable (UP-08, GW-14, AT-22):
 * - refreshed shortly before it expires (REFRESH_SKEW_MS), single-flight per grant, in this
 *   process (a shared promise) and across replicas (DESIGN §8): U may rotate refresh tokens and
 *   treat a reused one as theft, revoking the whole grant (RFC 9700 §4.14.2; GitHub does). The
 *   refresh runs under `exclusive('upstream-refresh:<grant>')` (src/db/sql.ts; on PostgreSQL a
 *   session-level advisory lock on one of 4 lock connections, no transaction open during the call
 *   to U). A replica that waited re-reads the row and uses another's refresh of the token it found
 *   due. The wait, that for a free lock connection included, is bounded (REFRESH_LOCK_WAIT_MS):
 *   beyond it a still-valid stored token is used, else the request fails as U unreachable (504);
 * - U answering `invalid_grant` (GitHub: `bad_refresh_token`): P's grant is revoked with the whole
 *   cascade (401, authorize again), as when R refuses a token with no refresh token and U's own API
 *   does too (`refusedByR`); U unreachable or failing: 502/504, a still-valid token used meanwhile;
 * - the result is saved only over the row it replaces (UpstreamTokenStore.replace): for a grant
 *   revoked meanwhile nothing is re-created, U is asked to revoke the new token, `revoked`. When the
 *   database cannot take it, it is not lost (U spent the old refresh token): used, held by this
 *   process (its requests and next refresh use it), saved in the background (Backoff, under the
 *   same lock, SQLite's without its busy wait) and once more at shutdown; revoked at U at once
 *   when this process revokes the grant. Until saved, other replicas read the old row.
 * The decrypted token is kept in the generation cache (src/gateway/cache.ts) until tokens or
 * consents change, so most requests skip the lookup and the AES-GCM decryption. So are the
 * patterns the gateway looks for in R's responses (GW-13, src/gateway/redact.ts): compiled from
 * the access and the refresh token once per token, not per request.
 */
import type { Audit } from '../audit/audit.js';
import type { Revocation } from '../consent/revocation.js';
import type { Logger } from 'pino';
import type { StoredUpstreamTokens, UpstreamAccess, UpstreamTokenSet, UpstreamTokenStore } from '../store/upstream-tokens.js';
import { after, LockTimeoutError, type Maybe } from '../db/sql.js';
import { UpstreamError, type UpstreamClient } from '../upstream/presets.js';
import { createGenerationCache } from './cache.js';
import { Backoff } from './backoff.js';
import { PerGrant } from './per-grant.js';
import { compileSecrets, type Secrets } from './redact.js';

/** Refresh U's token when it has less than this left. */
export const REFRESH_SKEW_MS = 60_000;
/** How long a replica waits for another one's refresh of the same grant. */
export const REFRESH_LOCK_WAIT_MS = 15_000;
/** The pauses before saving again a refreshed token the database did not take: the first, doubling up to the max. */
export const [SAVE_RETRY_FIRST_MS, SAVE_RETRY_MAX_MS] = [250, 5_000];

/** What the forwarder needs of U's tokens: the one to send, and all that must not come back. */
export interface UpstreamCredential {
  accessToken: string;
  /** U's access and refresh token, as the redactor looks for them (GW-13) */
  secrets: Secrets;
}

export type UpstreamTokenResult = ({ ok: true } & UpstreamCredential) | { ok: false; failure: 'revoked' | 'unreachable' | 'failed' };

export interface UpstreamTokenDeps {
  store: UpstreamTokenStore;
  upstream: () => UpstreamClient;
  revocation: Revocation;
  audit: Audit;
  generation: () => Maybe<number>;
  /** run fn holding `name` against every replica (Sql.exclusive), waiting at most waitMs */
  exclusive: <T>(name: string, waitMs: number, fn: () => Promise<T>) => Promise<T>;
  log: Logger;
}

type Who = { subject: string; clientId: string };
type Loaded = (UpstreamAccess & { secrets: Secrets }) | undefined;

/** A refresh's result this process holds until it is saved: `version` is the row's, which it replaces. */
type Unsaved = { tokens: StoredUpstreamTokens; secrets: Secrets; who: Who; since: number };

const usable = (tokens: UpstreamTokenSet): UpstreamTokenResult & { ok: true } => ({ ok: true, accessToken: tokens.accessToken, secrets: compileSecrets(tokens.accessToken, tokens.refreshToken) });

/** U's tokens per grant, cached by generation, refreshed single-flight per process. */
class UpstreamTokenSource {
  private readonly grants = new PerGrant<UpstreamTokenResult>();
  private readonly unsaved = new Map<string, Unsaved>();
  private readonly cache: ReturnType<typeof createGenerationCache<Loaded>>;
  private readonly retry = new Backoff(() => this.saveHeld(), SAVE_RETRY_FIRST_MS, SAVE_RETRY_MAX_MS);

  constructor(private readonly deps: UpstreamTokenDeps) {
    this.cache = createGenerationCache<Loaded>(deps.generation);
    deps.revocation.onRevoked((grantId) => this.dropHeld(grantId));
  }

  /**
   * U's access token for the grant, refreshed first when due (or when `forceRefresh`). The
   * answer is immediate (no promise) unless the token must be read from PostgreSQL or a
   * refresh has to wait for U. (A property, so a wrapper can replace it: test/bench/p-server.ts.)
   */
  get = (grantId: string, who: Who, forceRefresh = false, generation?: number): Maybe<UpstreamTokenResult> => {
    const held = this.unsaved.get(grantId);
    if (held) return this.use(grantId, who, forceRefresh, { accessToken: held.tokens.accessToken, refreshToken: held.tokens.refreshToken, expiresAt: held.tokens.expiresAt, secrets: held.secrets });
    return after(
      this.cache.get(grantId, () => this.load(grantId), generation),
      (access) => this.use(grantId, who, forceRefresh, access),
    );
  };

  /** How many refreshed tokens wait to be saved (a gauge for tests and shutdown). */
  get unsavedCount(): number {
    return this.unsaved.size;
  }

  /**
   * One attempt to save every refreshed token still held (the background retry calls it; at
   * shutdown it stops at the first failure); resolves with how many are left.
   */
  async saveHeld(stopAtFailure = false): Promise<number> {
    for (const [grantId, held] of [...this.unsaved]) {
      try {
        await this.grants.inTurn(grantId, () => this.deps.exclusive(lockName(grantId), REFRESH_LOCK_WAIT_MS, () => this.saveLate(grantId, held)));
      } catch (err) {
        this.deps.log.warn({ err: (err as Error).message, grantId }, 'saving a refreshed upstream token failed; it stays held and is retried');
        if (stopAtFailure) break;
      }
    }
    return this.unsaved.size;
  }

  /**
   * At shutdown: let refreshes under way finish (at most SAVE_RETRY_MAX_MS), try once more, stop
   * retrying, and say what is lost (so does a refresh whose save fails after this).
   */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((resolve) => (timer = setTimeout(resolve, SAVE_RETRY_MAX_MS)));
    await Promise.race([Promise.allSettled(this.grants.running()), deadline]);
    clearTimeout(timer);
    const left = this.unsaved.size > 0 ? await this.saveHeld(true) : 0;
    this.retry.close();
    if (left > 0) this.deps.log.error({ grants: [...this.unsaved.keys()] }, LOST);
  }

  /** A committed revocation in this process: a held token for the grant is revoked at U now, not at its next save. */
  private dropHeld(grantId: string): void {
    const held = this.unsaved.get(grantId);
    if (!held) return;
    this.unsaved.delete(grantId);
    this.deps.revocation.revokeUnkept(grantId, held.tokens, held.who.clientId, held.who.subject);
  }

  private load(grantId: string): Maybe<Loaded> {
    return after(this.deps.store.access(grantId), (access) => access && { ...access, secrets: compileSecrets(access.accessToken, access.refreshToken) });
  }

  /** What to send for a loaded token: it as it is, or a refresh when due. */
  private use(grantId: string, who: Who, forceRefresh: boolean, access: Loaded): Maybe<UpstreamTokenResult> {
    if (!access) return { ok: false, failure: 'revoked' };
    const due = forceRefresh || (access.expiresAt !== undefined && access.expiresAt - Date.now() < REFRESH_SKEW_MS);
    if (!due) return { ok: true, accessToken: access.accessToken, secrets: access.secrets };
    if (access.refreshToken === undefined) {
      if (access.expiresAt !== undefined && access.expiresAt <= Date.now()) {
        return this.deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant').then(() => ({ ok: false, failure: 'revoked' }) as const);
      }
      // R refused a token nothing can renew: handed back, it said "renewed; retry" (review 2026-12-07).
      if (forceRefresh) return this.grants.shared(grantId, () => this.refusedByR(grantId, access.accessToken));
      return { ok: true, accessToken: access.accessToken, secrets: access.secrets };
    }
    return this.refreshOnce(grantId, who, access.accessToken);
  }

  /**
   * A refresh for the grant, one at a time per process (concurrent requests share it) and across
   * replicas (the lock): `due` is the access token found due, which a refresh replaces.
   */
  private refreshOnce(grantId: string, who: Who, due: string): Promise<UpstreamTokenResult> {
    return this.grants.shared(grantId, () =>
      this.grants
        .inTurn(grantId, () => this.deps.exclusive(lockName(grantId), REFRESH_LOCK_WAIT_MS, () => this.refresh(grantId, who, due)))
        .catch((err: unknown) => (err instanceof LockTimeoutError ? this.stored(grantId) : Promise.reject(err))),
    );
  }

  /**
   * R refused U's access token and there is no refresh token (GW-14). U refusing it too: U's grant
   * is gone and P's ends with it (UP-08, AT-22). Otherwise (U accepted it, has no such API, did not
   * answer) nothing is revoked on R's word alone.
   */
  private async refusedByR(grantId: string, accessToken: string): Promise<UpstreamTokenResult> {
    if (!(await this.deps.upstream().refusesAccessToken(accessToken))) return { ok: false, failure: 'failed' };
    await this.deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant');
    return { ok: false, failure: 'revoked' };
  }

  /**
   * The grant's tokens as this process knows them (under the grant's lock): the row, or a result
   * held unsaved while the row is still the one it replaces — or when the row cannot be read. A
   * held result whose row is gone (revoked on another replica) is revoked at U; one whose row
   * changed (its save committed though the answer was lost, and another replica refreshed since)
   * is dropped for the row: its refresh token may be spent.
   */
  private async current(grantId: string): Promise<StoredUpstreamTokens | undefined> {
    const held = this.unsaved.get(grantId);
    if (!held) return this.deps.store.get(grantId);
    let row: StoredUpstreamTokens | undefined;
    try {
      row = await this.deps.store.get(grantId);
    } catch {
      return held.tokens;
    }
    if (row?.version === held.tokens.version) return held.tokens;
    if (!row) this.dropHeld(grantId);
    this.unsaved.delete(grantId);
    return row;
  }

  /** The lock was not had within the wait (another replica's refresh, or every lock connection busy): the stored token if it is usable, else U counts as unreachable. */
  private async stored(grantId: string): Promise<UpstreamTokenResult> {
    const current = await this.current(grantId);
    if (!current) return { ok: false, failure: 'revoked' };
    if (current.expiresAt !== undefined && current.expiresAt <= Date.now()) return { ok: false, failure: 'unreachable' };
    return usable(current);
  }

  private async refresh(grantId: string, who: Who, due: string): Promise<UpstreamTokenResult> {
    const { deps } = this;
    const current = await this.current(grantId);
    if (!current) return { ok: false, failure: 'revoked' };
    // Refreshed by another replica while this one waited for the lock: use its result (issue 11).
    if (current.accessToken !== due) return usable(current);
    if (!current.refreshToken) return { ok: false, failure: 'revoked' };
    let next: Awaited<ReturnType<UpstreamClient['refresh']>>;
    try {
      next = await deps.upstream().refresh(current.refreshToken);
    } catch (err) {
      const failure = err instanceof UpstreamError ? err : new UpstreamError('upstream_error', (err as Error).message);
      await deps.audit.record({ event: 'upstream.refresh_failed', reason: failure.reason, ...who, details: { grant_id: grantId, upstream_error: failure.upstreamCode } });
      if (failure.reason === 'invalid_grant') {
        this.unsaved.delete(grantId);
        await deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant');
        return { ok: false, failure: 'revoked' };
      }
      // A token that has not expired yet is still worth using.
      if (current.expiresAt !== undefined && current.expiresAt > Date.now()) return usable(current);
      return { ok: false, failure: failure.reason === 'unreachable' ? 'unreachable' : 'failed' };
    }
    // U may or may not rotate the refresh token; the one to keep is the one it kept.
    const tokens: StoredUpstreamTokens = {
      ...current,
      accessToken: next.accessToken,
      refreshToken: next.refreshToken ?? current.refreshToken,
      expiresAt: next.expiresAt,
      scopes: next.scope ?? current.scopes,
    };
    try {
      const saved = await deps.store.replace(grantId, current.version, tokens, { wait: true });
      if (saved === null) return await this.notKept(grantId, tokens, who);
    } catch (err) {
      // U has spent the old refresh token: losing this result would make the next refresh a reuse.
      return this.hold(grantId, tokens, who, err as Error);
    }
    this.unsaved.delete(grantId);
    await deps.audit.record({ event: 'upstream.token_refreshed', ...who, details: { grant_id: grantId } });
    return usable(tokens);
  }

  /** U's answer, which the database did not take: used now, held, and saved in the background. */
  private hold(grantId: string, tokens: StoredUpstreamTokens, who: Who, err: Error): UpstreamTokenResult {
    const result = usable(tokens);
    this.unsaved.set(grantId, { tokens, secrets: result.secrets, who, since: this.unsaved.get(grantId)?.since ?? Date.now() });
    if (this.retry.closed) this.deps.log.error({ err: err.message, grants: [grantId] }, LOST);
    else this.deps.log.warn({ err: err.message, grantId }, 'a refreshed upstream token could not be saved; it is used and kept in this process, and saved when the database answers');
    this.retry.schedule();
    return result;
  }

  /**
   * The row changed while U answered: gone (the grant revoked — U is asked to revoke the token
   * it just issued, UP-08) or written by another holder of the lock (a lock lost with its
   * connection): the database's answer is the one every replica reads, so it is used. A held
   * result is let go only once that is known (a failed read throws and it stays held).
   */
  private async notKept(grantId: string, tokens: UpstreamTokenSet, who: Who): Promise<UpstreamTokenResult> {
    const now = await this.deps.store.get(grantId);
    this.unsaved.delete(grantId);
    if (now) return usable(now);
    this.deps.revocation.revokeUnkept(grantId, tokens, who.clientId, who.subject);
    return { ok: false, failure: 'revoked' };
  }

  /** A held result, saved now if nothing replaced it meanwhile (called holding the grant's lock). */
  private async saveLate(grantId: string, held: Unsaved): Promise<void> {
    if (this.unsaved.get(grantId) !== held) return;
    const saved = await this.deps.store.replace(grantId, held.tokens.version, held.tokens, { wait: false });
    if (saved === undefined) throw new Error('the database is busy');
    if (saved === null) {
      await this.notKept(grantId, held.tokens, held.who);
      return;
    }
    this.unsaved.delete(grantId);
    await this.deps.audit.record({ event: 'upstream.token_refreshed', ...held.who, details: { grant_id: grantId, saved_after_ms: Date.now() - held.since } });
  }
}

const lockName = (grantId: string) => `upstream-refresh:${grantId}`;
const LOST = "refreshed upstream tokens could not be saved before exit: U will refuse these grants' next refresh until the user authorizes again";

export function createUpstreamTokenSource(deps: UpstreamTokenDeps): UpstreamTokenSource {
  return new UpstreamTokenSource(deps);
}

export type { UpstreamTokenSource };
