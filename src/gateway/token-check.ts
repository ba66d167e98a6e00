/**
 * The gateway's token check — the one module that decides whether a request to `/mcp` (or an API
 * route) carries a usable P access token (DESIGN §2 step 8):
 * - GW-08: the token comes from the `Authorization: Bearer` header only, never the query;
 * - GW-01: it exists (looked up by SHA-256), is unexpired, and its consent is active (neither revoked
 *   nor expired, src/consent/status.ts) — checked on every request, so a revocation applies to the very next one;
 * - GW-02/GW-03, AT-14: its audience is exactly this resource, so a token for another resource
 *   of P, or any token P did not issue (an upstream token sent directly), is refused;
 * - its client still stands: not disabled by an admin (DESIGN §3 "Actions cascade": a disabled
 *   client's tokens stop at once, not only when the disabling's cascade reaches each consent), and,
 *   for a Client ID Metadata Document client, CIMD on and its URL still within the trust policy
 *   (CIMD-01, CIMD-05, src/cimd/client-id.ts — as at /token);
 * - GW-06/07: the required scope is present, else 403 `insufficient_scope` naming it (step-up);
 * - GW-05: no token ⇒ 401 with no error code; a bad one ⇒ 401 `invalid_token`.
 * Pure with respect to HTTP: it returns a decision (at once, or as a promise when a fact must be
 * read from PostgreSQL); src/flow/8-gateway.ts writes the response.
 * The token row and its consent's expiry are read through the generation cache
 * (src/gateway/cache.ts): any change to tokens or consents, in any process, invalidates them,
 * so revocation stays immediate.
 */
import type { ConsentLifetime, ConsentStore } from '../store/consents.js';
import { checkClientIdUrl, looksLikeClientIdUrl, type HostTrustPolicy } from '../cimd/client-id.js';
import { isActive } from '../consent/status.js';
import type { OidcModelStore } from '../store/oidc-models.js';
import { sha256 } from '../crypto/keys.js';
import { createGenerationCache } from './cache.js';
import { after, type Maybe } from '../db/sql.js';

export interface TokenGrant {
  ok: true;
  grantId: string;
  subject: string;
  clientId: string;
  scopes: Set<string>;
  /** when this decision lapses with nothing changed (ms): the token's expiry or its consent's, whichever is first */
  until: number;
}

export interface TokenRefusal {
  ok: false;
  status: 401 | 403;
  /** RFC 6750 error code; undefined when no token was presented (GW-05) */
  error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | undefined;
  /** stable audit reason */
  reason: 'no_token' | 'malformed' | 'query_token' | 'unknown_token' | 'expired' | 'wrong_audience' | 'consent_revoked' | 'client_disabled' | 'cimd_refused' | 'insufficient_scope';
  description: string | undefined;
  /** with 403 `insufficient_scope`: the scopes the token holds, which the challenge keeps (challengeScopes) */
  granted?: ReadonlySet<string>;
}

/**
 * The `scope` of a 403 `insufficient_scope` challenge: every scope the request needs and the
 * token's own MCP scopes (MCP_SCOPES) — one challenge naming everything the operation needs (MCP
 * 2026-07-28 Authz §Scope Challenge Handling; RFC 6750 §3.1), so a client that re-authorizes with
 * exactly that set keeps what it had. P defines no scope hierarchy (GW-07). The route scope's 403
 * named that scope alone, and a client that followed it lost its other scopes (review 2026-12-07).
 */
export function challengeScopes(needed: readonly string[], mcpScopes: readonly string[], granted: ReadonlySet<string>): string[] {
  return [...new Set([...needed, ...mcpScopes.filter((scope) => granted.has(scope))])];
}

export type TokenDecision = TokenGrant | TokenRefusal;

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/; // RFC 6750 §2.1

export interface TokenCheckInput {
  authorization: string | undefined;
  /** true when the URL carries access_token (never accepted, GW-08) */
  queryToken: boolean;
  resource: string;
  requiredScope: string;
  now?: number;
  /** the database generation, when the caller already read it for this request */
  generation?: number;
}

const refuse = (status: 401 | 403, reason: TokenRefusal['reason'], error: TokenRefusal['error'], description?: string): TokenRefusal => ({
  ok: false,
  status,
  reason,
  error,
  description,
});

/** Why the token's client no longer stands, if it does not (worked out once per load, the configuration being fixed). */
type ClientStanding = 'ok' | 'client_disabled' | 'cimd_refused';

interface TokenFacts {
  token: Record<string, unknown> | undefined;
  /** the grant's consent's revocation and expiry; undefined when it is gone */
  consent: ConsentLifetime | undefined;
  client: ClientStanding;
}

/** How the gateway treats Client ID Metadata Document clients: the configuration /authorize and /token use. */
export interface CimdStanding {
  enabled: boolean;
  trust: HostTrustPolicy;
}

/** The decision for a token whose facts are known (pure; GW-01..08). */
function decide(input: TokenCheckInput, now: number, { token, consent, client }: TokenFacts): TokenDecision {
  if (!token) return refuse(401, 'unknown_token', 'invalid_token', 'the access token is not valid');
  if (typeof token.exp === 'number' && token.exp * 1000 <= now) return refuse(401, 'expired', 'invalid_token', 'the access token expired');
  const audience = token.aud;
  if (audience !== input.resource && !(Array.isArray(audience) && audience.length === 1 && audience[0] === input.resource)) {
    return refuse(401, 'wrong_audience', 'invalid_token', 'the access token is for another resource');
  }
  const grantId = token.grantId;
  if (typeof grantId !== 'string' || !consent || !isActive(consent, now)) {
    return refuse(401, 'consent_revoked', 'invalid_token', 'the authorization behind this token was revoked or expired');
  }
  if (client === 'client_disabled') return refuse(401, 'client_disabled', 'invalid_token', 'the client this token was issued to is disabled');
  if (client === 'cimd_refused') return refuse(401, 'cimd_refused', 'invalid_token', 'the client this token was issued to is no longer accepted');
  const scopes = new Set(
    String(token.scope ?? '')
      .split(' ')
      .filter(Boolean),
  );
  if (!scopes.has(input.requiredScope)) {
    return { ...refuse(403, 'insufficient_scope', 'insufficient_scope', `this resource requires the scope ${input.requiredScope}`), granted: scopes };
  }
  const until = Math.min(consent.expires_at, typeof token.exp === 'number' ? token.exp * 1000 : Infinity);
  return { ok: true, grantId, subject: String(token.accountId), clientId: String(token.clientId), scopes, until };
}

/**
 * The token check over the stores. Its answer is immediate (no promise) when the facts are cached
 * or the engine reads synchronously (SQLite), a promise otherwise (PostgreSQL on a cache miss).
 */
export function createTokenCheck(models: OidcModelStore, consents: ConsentStore, generation: () => Maybe<number>, cimd: CimdStanding) {
  // Unknown tokens are not remembered: a new token row does not move the generation.
  const cache = createGenerationCache<TokenFacts>(generation, { keep: (facts) => facts.token !== undefined });
  /**
   * The client's standing. Disabled: the admin's flag (it moves the generation, migration 0013 /
   * postgres 0005). A CIMD client: refused with CIMD off, or when its URL no longer passes the
   * trust policy (CIMD-01, CIMD-05) — the provider refuses it at /authorize and /token on the same rules
   * (src/provider/configuration.ts `hideCimdClients`, src/cimd/clients.ts `ensureStored`).
   */
  const standing = (clientId: unknown, disabledAt: number | null, kind: string | null): ClientStanding => {
    if (disabledAt !== null) return 'client_disabled';
    // A URL-shaped client_id without its clients_meta row (a write lost before its storage became one transaction) is a CIMD client too.
    const isCimd = kind === 'cimd' || (kind === null && looksLikeClientIdUrl(clientId));
    if (isCimd && (!cimd.enabled || !checkClientIdUrl(String(clientId), cimd.trust).ok)) return 'cimd_refused';
    return 'ok';
  };
  const facts = (hash: string): Maybe<TokenFacts> =>
    after(models.findAccessTokenByHash(hash), (token) => {
      const grantId = token?.grantId;
      if (typeof grantId !== 'string') return { token, consent: undefined, client: 'ok' };
      return after(consents.standing(grantId), (row) => ({
        token,
        consent: row,
        client: row ? standing(token?.clientId, row.client_disabled_at, row.client_kind) : 'ok',
      }));
    });
  return function checkToken(input: TokenCheckInput): Maybe<TokenDecision> {
    const now = input.now ?? Date.now();
    if (input.queryToken) return refuse(401, 'query_token', 'invalid_request', 'send the access token in the Authorization header, not the URL');
    const header = input.authorization;
    if (!header) return refuse(401, 'no_token', undefined);
    const match = /^Bearer +(\S+)$/i.exec(header);
    if (!match || !B64TOKEN.test(match[1] as string)) return refuse(401, 'malformed', 'invalid_token', 'the Authorization header must be "Bearer <token>"');
    const hash = sha256(match[1] as string);
    return after(
      cache.get(hash, () => facts(hash), input.generation),
      (known) => decide(input, now, known),
    );
  };
}

export type TokenCheck = ReturnType<typeof createTokenCheck>;
