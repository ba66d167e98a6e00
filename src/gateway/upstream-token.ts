/**
 * U's token for a grant, kept usable (UP-08, GW-14, AT-22):
 * - refreshed shortly before it expires (REFRESH_SKEW_MS), single-flight per grant: concurrent
 *   requests wait for one refresh — in this process (a shared promise) and across replicas
 *   (DESIGN §8, issue 11): U may rotate refresh tokens and treat a reused one as theft, revoking
 *   the whole grant (OAuth 2.0 Security BCP, RFC 9700 §4.14.2; GitHub does), so two replicas must
 *   never send the same refresh token. The refresh runs under `exclusive('upstream-refresh:<grant>')`
 *   (src/db/sql.ts): on PostgreSQL a session-level advisory lock on a connection of its own, not a
 *   transaction — nothing stays open in the database during the call to U but that lock, and no
 *   main-pool connection is held for it. A replica that waited for the lock re-reads the stored
 *   token and, when another one replaced the token it found due, uses that result instead of
 *   refreshing again. The wait is bounded (REFRESH_LOCK_WAIT_MS): beyond it the stored token is
 *   used when still valid, else the request fails as U unreachable (504);
 * - U answering `invalid_grant` means the upstream grant is gone: P's grant is revoked with the
 *   whole cascade, so the client gets 401 and must authorize again;
 * - U unreachable or failing: the request fails with 502/504; a token that is still valid is
 *   used meanwhile.
 * The decrypted token is kept in the generation cache (src/gateway/cache.ts) until tokens or
 * consents change, so most requests skip the lookup and the AES-GCM decryption. So are the
 * patterns the gateway looks for in R's responses (GW-13, src/gateway/redact.ts): compiled from
 * the access and the refresh token once per token, not per request.
 */
import type { Audit } from '../audit/audit.js';
import type { Revocation } from '../consent/revocation.js';
import type { UpstreamAccess, UpstreamTokenStore } from '../store/upstream-tokens.js';
import { after, LockTimeoutError, type Maybe } from '../db/sql.js';
import { UpstreamError, type UpstreamClient } from '../upstream/presets.js';
import { createGenerationCache } from './cache.js';
import { compileSecrets, type Secrets } from './redact.js';

/** Refresh U's token when it has less than this left. */
export const REFRESH_SKEW_MS = 60_000;
/** How long a replica waits for another one's refresh of the same grant. */
export const REFRESH_LOCK_WAIT_MS = 15_000;

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
}

type Who = { subject: string; clientId: string };
type Loaded = (UpstreamAccess & { secrets: Secrets }) | undefined;

/** U's tokens per grant, cached by generation, refreshed single-flight per process. */
class UpstreamTokenSource {
  private readonly inflight = new Map<string, Promise<UpstreamTokenResult>>();
  private readonly cache: ReturnType<typeof createGenerationCache<Loaded>>;

  constructor(private readonly deps: UpstreamTokenDeps) {
    this.cache = createGenerationCache<Loaded>(deps.generation);
  }

  /**
   * U's access token for the grant, refreshed first when due (or when `forceRefresh`). The
   * answer is immediate (no promise) unless the token must be read from PostgreSQL or a
   * refresh has to wait for U. (A property, so a wrapper can replace it: test/bench/p-server.ts.)
   */
  get = (grantId: string, who: Who, forceRefresh = false, generation?: number): Maybe<UpstreamTokenResult> =>
    after(
      this.cache.get(grantId, () => this.load(grantId), generation),
      (access) => this.use(grantId, who, forceRefresh, access),
    );

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
      return { ok: true, accessToken: access.accessToken, secrets: access.secrets };
    }
    return this.refreshOnce(grantId, who, access.accessToken);
  }

  /**
   * A refresh for the grant, one at a time per process (concurrent requests share it) and across
   * replicas (the lock): `due` is the access token found due, which a refresh replaces.
   */
  private refreshOnce(grantId: string, who: Who, due: string): Promise<UpstreamTokenResult> {
    let pending = this.inflight.get(grantId);
    if (!pending) {
      pending = this.deps
        .exclusive(`upstream-refresh:${grantId}`, REFRESH_LOCK_WAIT_MS, () => this.refresh(grantId, who, due))
        .catch((err: unknown) => (err instanceof LockTimeoutError ? this.stored(grantId) : Promise.reject(err)))
        .finally(() => this.inflight.delete(grantId));
      this.inflight.set(grantId, pending);
    }
    return pending;
  }

  /** Another replica's refresh outlasted the wait: the stored token if it is usable, else U counts as unreachable. */
  private async stored(grantId: string): Promise<UpstreamTokenResult> {
    const current = await this.deps.store.get(grantId);
    if (!current) return { ok: false, failure: 'revoked' };
    if (current.expiresAt !== undefined && current.expiresAt <= Date.now()) return { ok: false, failure: 'unreachable' };
    return { ok: true, accessToken: current.accessToken, secrets: compileSecrets(current.accessToken, current.refreshToken) };
  }

  private async refresh(grantId: string, who: Who, due: string): Promise<UpstreamTokenResult> {
    const { deps } = this;
    const current = await deps.store.get(grantId);
    if (!current) return { ok: false, failure: 'revoked' };
    // Refreshed by another replica while this one waited for the lock: use its result (issue 11).
    if (current.accessToken !== due) return { ok: true, accessToken: current.accessToken, secrets: compileSecrets(current.accessToken, current.refreshToken) };
    if (!current.refreshToken) return { ok: false, failure: 'revoked' };
    try {
      const next = await deps.upstream().refresh(current.refreshToken);
      await deps.store.save(grantId, current.subject, { accessToken: next.accessToken, refreshToken: next.refreshToken, expiresAt: next.expiresAt, scopes: next.scope });
      await deps.audit.record({ event: 'upstream.token_refreshed', ...who, details: { grant_id: grantId } });
      // U may or may not rotate the refresh token; the stored one is the one it kept (coalesce).
      return { ok: true, accessToken: next.accessToken, secrets: compileSecrets(next.accessToken, next.refreshToken ?? current.refreshToken) };
    } catch (err) {
      const failure = err instanceof UpstreamError ? err : new UpstreamError('upstream_error', (err as Error).message);
      await deps.audit.record({ event: 'upstream.refresh_failed', reason: failure.reason, ...who, details: { grant_id: grantId, upstream_error: failure.upstreamCode } });
      if (failure.reason === 'invalid_grant') {
        await deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant');
        return { ok: false, failure: 'revoked' };
      }
      // A token that has not expired yet is still worth using.
      if (current.expiresAt !== undefined && current.expiresAt > Date.now()) return { ok: true, accessToken: current.accessToken, secrets: compileSecrets(current.accessToken, current.refreshToken) };
      return { ok: false, failure: failure.reason === 'unreachable' ? 'unreachable' : 'failed' };
    }
  }
}

export function createUpstreamTokenSource(deps: UpstreamTokenDeps): UpstreamTokenSource {
  return new UpstreamTokenSource(deps);
}

export type { UpstreamTokenSource };
