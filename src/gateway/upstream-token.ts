/**
 * U's token for a grant, kept usable (UP-08, GW-14, AT-22):
 * - refreshed shortly before it expires (REFRESH_SKEW_MS), single-flight per grant: concurrent
 *   requests wait for one refresh;
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
import type { UpstreamTokenStore } from '../store/upstream-tokens.js';
import { UpstreamError, type UpstreamClient } from '../upstream/presets.js';
import { createGenerationCache } from './cache.js';
import { compileSecrets, type Secrets } from './redact.js';

/** Refresh U's token when it has less than this left. */
export const REFRESH_SKEW_MS = 60_000;

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
  generation: () => number;
}

export function createUpstreamTokenSource(deps: UpstreamTokenDeps) {
  const inflight = new Map<string, Promise<UpstreamTokenResult>>();
  const cache = createGenerationCache<(NonNullable<ReturnType<UpstreamTokenStore['access']>> & { secrets: Secrets }) | undefined>(deps.generation);
  const load = (grantId: string) => {
    const access = deps.store.access(grantId);
    return access && { ...access, secrets: compileSecrets(access.accessToken, access.refreshToken) };
  };

  async function refresh(grantId: string, who: { subject: string; clientId: string }): Promise<UpstreamTokenResult> {
    const current = deps.store.get(grantId);
    if (!current?.refreshToken) return { ok: false, failure: 'revoked' };
    try {
      const next = await deps.upstream().refresh(current.refreshToken);
      deps.store.save(grantId, current.subject, { accessToken: next.accessToken, refreshToken: next.refreshToken, expiresAt: next.expiresAt, scopes: next.scope });
      deps.audit.record({ event: 'upstream.token_refreshed', ...who, details: { grant_id: grantId } });
      // U may or may not rotate the refresh token; the stored one is the one it kept (coalesce).
      return { ok: true, accessToken: next.accessToken, secrets: compileSecrets(next.accessToken, next.refreshToken ?? current.refreshToken) };
    } catch (err) {
      const failure = err instanceof UpstreamError ? err : new UpstreamError('upstream_error', (err as Error).message);
      deps.audit.record({ event: 'upstream.refresh_failed', reason: failure.reason, ...who, details: { grant_id: grantId, upstream_error: failure.upstreamCode } });
      if (failure.reason === 'invalid_grant') {
        deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant');
        return { ok: false, failure: 'revoked' };
      }
      // A token that has not expired yet is still worth using.
      if (current.expiresAt !== undefined && current.expiresAt > Date.now()) return { ok: true, accessToken: current.accessToken, secrets: compileSecrets(current.accessToken, current.refreshToken) };
      return { ok: false, failure: failure.reason === 'unreachable' ? 'unreachable' : 'failed' };
    }
  }

  return {
    /**
     * U's access token for the grant, refreshed first when due (or when `forceRefresh`). The
     * answer is immediate (no promise) unless a refresh has to wait for U.
     */
    get(grantId: string, who: { subject: string; clientId: string }, forceRefresh = false, generation?: number): UpstreamTokenResult | Promise<UpstreamTokenResult> {
      const access = cache.get(grantId, () => load(grantId), generation);
      if (!access) return { ok: false, failure: 'revoked' };
      const due = forceRefresh || (access.expiresAt !== undefined && access.expiresAt - Date.now() < REFRESH_SKEW_MS);
      if (!due) return { ok: true, accessToken: access.accessToken, secrets: access.secrets };
      if (access.refreshToken === undefined) {
        if (access.expiresAt !== undefined && access.expiresAt <= Date.now()) {
          deps.revocation.revokeGrant(grantId, 'upstream_invalid_grant');
          return { ok: false, failure: 'revoked' };
        }
        return { ok: true, accessToken: access.accessToken, secrets: access.secrets };
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
