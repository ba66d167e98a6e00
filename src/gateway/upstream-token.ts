/**
 * U's token for a grant, kept usable (UP-08, GW-14, AT-22):
 * - refreshed shortly before it expires (REFRESH_SKEW_MS), single-flight per grant: concurrent
 *   requests wait for one refresh;
 * - U answering `invalid_grant` means the upstream grant is gone: P's grant is revoked with the
 *   whole cascade, so the client gets 401 and must authorize again;
 * - U unreachable or failing: the request fails with 502/504; a token that is still valid is
 *   used meanwhile.
 * The decrypted token is kept in the generation cache (src/gateway/cache.ts) until tokens or
 * consents change, so most requests skip the lookup and the AES-GCM decryption.
 */
import type { Audit } from '../audit/audit.js';
import type { Revocation } from '../flow/revocation.js';
import type { UpstreamTokenStore } from '../store/upstream-tokens.js';
import { UpstreamError, type UpstreamClient } from '../upstream/presets.js';
import { createGenerationCache } from './cache.js';

/** Refresh U's token when it has less than this left. */
export const REFRESH_SKEW_MS = 60_000;

export type UpstreamTokenResult =
  | { ok: true; accessToken: string }
  | { ok: false; failure: 'revoked' | 'unreachable' | 'failed' };

export interface UpstreamTokenDeps {
  store: UpstreamTokenStore;
  upstream: () => UpstreamClient;
  revocation: Revocation;
  audit: Audit;
  generation: () => number;
}

export function createUpstreamTokenSource(deps: UpstreamTokenDeps) {
  const inflight = new Map<string, Promise<UpstreamTokenResult>>();
  const cache = createGenerationCache<ReturnType<UpstreamTokenStore['access']>>(deps.generation);

  async function refresh(grantId: string, who: { subject: string; clientId: string }): Promise<UpstreamTokenResult> {
    const current = deps.store.get(grantId);
    if (!current?.refreshToken) return { ok: false, failure: 'revoked' };
    try {
      const next = await deps.upstream().refresh(current.refreshToken);
      deps.store.save(grantId, current.subject, { accessToken: next.accessToken, refreshToken: next.refreshToken, expiresAt: next.expiresAt, scopes: next.scope });
      deps.audit.record({ event: 'upstream.token_refreshed', ...who, details: { grant_id: grantId } });
      return { ok: true, accessToken: next.accessToken };
    } catch (err) {
      const failure = err instanceof UpstreamError ? err : new UpstreamError('upstream_error', (err as Error).message);
      deps.audit.record({ event: 'upstream.refresh_failed', reason: failure.reason, ...who, details: { grant_id: grantId, upstream_error: failure.upstreamCode } });
      if (failure.reason === 'invalid_grant') {
        deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant');
        return { ok: false, failure: 'revoked' };
      }
      // A token that has not expired yet is still worth using.
      if (current.expiresAt !== undefined && current.expiresAt > Date.now()) return { ok: true, accessToken: current.accessToken };
      return { ok: false, failure: failure.reason === 'unreachable' ? 'unreachable' : 'failed' };
    }
  }

  return {
    /**
     * U's access token for the grant, refreshed first when due (or when `forceRefresh`). The
     * answer is immediate (no promise) unless a refresh has to wait for U.
     */
    get(grantId: string, who: { subject: string; clientId: string }, forceRefresh = false, generation?: number): UpstreamTokenResult | Promise<UpstreamTokenResult> {
      const access = cache.get(grantId, () => deps.store.access(grantId), generation);
      if (!access) return { ok: false, failure: 'revoked' };
      const due = forceRefresh || (access.expiresAt !== undefined && access.expiresAt - Date.now() < REFRESH_SKEW_MS);
      if (!due) return { ok: true, accessToken: access.accessToken };
      if (!access.hasRefresh) {
        if (access.expiresAt !== undefined && access.expiresAt <= Date.now()) {
          deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant');
          return { ok: false, failure: 'revoked' };
        }
        return { ok: true, accessToken: access.accessToken };
      }
      let pending = inflight.get(grantId);
      if (!pending) {
        pending = refresh(grantId, who).finally(() => inflight.delete(grantId));
        inflight.set(grantId, pending);
      }
      return pending;
    },
  };
}

export type UpstreamTokenSource = ReturnType<typeof createUpstreamTokenSource>;
