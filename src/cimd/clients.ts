/**
 * CIMD clients — from an https client_id to a client oidc-provider knows (issue 12, DESIGN §10).
 * The one module that decides which client_ids are CIMD client_ids and turns an accepted
 * document into a stored client. P's own implementation, not oidc-provider's experimental
 * `clientIdMetadataDocument` feature: that feature fetches with its own HTTP client inside the
 * provider's client lookup, where none of the SSRF rules of src/cimd/fetch.ts (address policy,
 * pinned connection, no redirects, 5 KiB, 5 s), the trust policy or the audit rows can be
 * enforced, and its failures surface as a generic invalid_client. So P resolves the client_id
 * BEFORE the provider looks the client up (src/flow/3-cimd.ts) and stores the result in the same
 * client store DCR clients live in; the provider then finds an ordinary public client.
 *
 * Enforces:
 * - DESIGN §10 / CIMD_ENABLED: a client_id is a CIMD client_id only when CIMD is enabled and it
 *   starts with `https://` (or `http://`, which src/cimd/client-id.ts then refuses unless the
 *   test-only allowance applies). DCR client_ids are random strings and never look like URLs.
 *   With CIMD off such a client_id is simply unknown to the provider (nothing is fetched).
 * - CIMD-02/04 "nothing else trusted": the stored client is only what src/cimd/document.ts kept
 *   — a public client (`token_endpoint_auth_method: none`, PKCE like every client), its
 *   redirect_uris, client_name, the grants narrowed to code/refresh, application_type derived
 *   from the redirect URIs, and https client_uri/logo_uri as text.
 * - CIMD-06: a document is re-fetched when the cache says it is stale (src/cimd/cache.ts); each
 *   fresh fetch rewrites the stored client, so a changed document takes effect, and a refused
 *   one stops the authorization (no stale fallback).
 * - CIMD-07: a refusal — URL, trust policy, fetch or document — is audited as `cimd.refused`
 *   with its reason code (and counted in clients_meta for a known client); an accepted fetch as
 *   `cimd.fetched`. Cache hits write nothing. Concurrent requests for one client_id share one
 *   resolution and one audit row.
 * - An admin's disabling holds: a disabled CIMD client is not fetched (the provider then treats
 *   it as unknown, src/provider/configuration.ts), and a re-fetch never re-enables it.
 * - Decision (/token, /revoke): nothing is fetched there. A client already in the store is used
 *   as stored, once its client_id still passes the trust policy (CIMD_ALLOWED_HOSTS,
 *   CIMD_DENIED_HOSTS: a host denied later stops its refreshes too); a CIMD client_id P has never
 *   stored is left to the provider, which does not know it (invalid_client) — only /authorize can
 *   come first, so fetching there would only let anyone store clients outside the registration
 *   budget (found by review, 2026-12-06). A refresh does not depend on the client's web host
 *   being up at that moment; the document is re-checked at the next /authorize.
 * - A failure is counted in clients_meta once per fetch, not per request a cached failure
 *   answers (each such request is still audited).
 */
import type { Audit } from '../audit/audit.js';
import { capOptional, withoutUserinfo } from '../audit/limits.js';
import type { Config } from '../config/load.js';
import { redirectHosts } from '../oauth/redirect-uri.js';
import type { Stores } from '../store/index.js';
import type { ClientIdMetadata } from './document.js';
import type { CimdFetchOptions } from './fetch.js';
import { createClientIdMetadataResolver, requesterOf } from './resolve.js';
import { checkClientIdUrl, looksLikeClientIdUrl, trustPolicyOf } from './client-id.js';

/** Who asked (audit and provenance). */
export interface Requester {
  ip?: string | undefined;
  userAgent?: string | undefined;
  requestId?: string | undefined;
}

export type EnsureResult = { ok: true } | { ok: false; reason: string; detail: string };

export interface CimdClientsDeps {
  config: Pick<Config, 'cimd' | 'dangerouslyAllowInsecureHttp' | 'redirectSchemes'>;
  stores: Pick<Stores, 'models' | 'clientsMeta' | 'transaction'>;
  audit: Audit;
  /** TEST SEAM: resolver, test route, trust anchors, clock of the fetcher (production: none) */
  fetch?: Pick<CimdFetchOptions, 'lookup' | 'testOnlyRoute' | 'ca' | 'now'> & { maxConcurrentFetches?: number; maxFetchesPerRequester?: number; maxFetchesPerDestination?: number };
  now?: () => number;
}

export interface CimdClients {
  readonly enabled: boolean;
  /** CIMD on and the client_id looks like a URL: P resolves it before the provider sees it */
  isCimdClientId(clientId: unknown): clientId is string;
  /** /authorize: the client as its (fresh or cached) document says, or a refusal (audited) */
  ensure(clientId: string, who: Requester): Promise<EnsureResult>;
  /** whether P has this client stored (a CIMD client_id seen before) */
  isStored(clientId: string): Promise<boolean>;
  /** /token, /revoke: a stored client as stored if its client_id passes the trust policy; nothing fetched */
  ensureStored(clientId: string, who: Requester): Promise<EnsureResult>;
}

const MAX_AUDITED_CLIENT_ID = 200;

/** The oidc-provider Client payload for an accepted document: nothing else from the document. */
export function clientPayload(metadata: ClientIdMetadata): Record<string, unknown> {
  return {
    client_id: metadata.client_id,
    client_name: metadata.client_name,
    redirect_uris: metadata.redirect_uris,
    grant_types: metadata.grant_types,
    response_types: metadata.response_types,
    token_endpoint_auth_method: metadata.token_endpoint_auth_method,
    application_type: metadata.application_type,
    ...(metadata.client_uri !== undefined ? { client_uri: metadata.client_uri } : {}),
    ...(metadata.logo_uri !== undefined ? { logo_uri: metadata.logo_uri } : {}),
  };
}

type Accepted = { value: ClientIdMetadata; fetchedAt: number; expiresAt: number; fromCache: boolean };
type Refused = { reason: string; detail: string; fetchedAt: number; fromCache: boolean };

/** Cut for its audit row — its userinfo masked first: cut, a password's `@` could fall beyond the cut and leave it bare (review 2026-12-08). */
const audited = (clientId: string) => withoutUserinfo(clientId).slice(0, MAX_AUDITED_CLIENT_ID);

/** A refusal: counted for a known client, audited (`cimd.refused`). */
async function noteRefusal(deps: CimdClientsDeps, clientId: string, outcome: Refused, who: Requester): Promise<EnsureResult> {
  if (!outcome.fromCache) await deps.stores.clientsMeta.recordCimdFailure(clientId, outcome.fetchedAt, outcome.reason);
  await deps.audit.record({
    event: 'cimd.refused',
    reason: outcome.reason,
    clientId: audited(clientId),
    ip: who.ip,
    requestId: who.requestId,
    details: { detail: outcome.detail, cached: outcome.fromCache },
  });
  return { ok: false, reason: outcome.reason, detail: outcome.detail };
}

/** An accepted document: the stored client and clients_meta follow it; a fresh fetch is audited (`cimd.fetched`). */
async function storeClient(deps: CimdClientsDeps, clientId: string, outcome: Accepted, who: Requester): Promise<EnsureResult> {
  const { stores, audit } = deps;
  const metadata = outcome.value;
  // One transaction (review 2026-12-06): a Client row without its clients_meta row would be a CIMD
  // client the disabled flag, CIMD_ENABLED=false and idle housekeeping know nothing of.
  // clients_meta first, as a client's removal takes it first (src/consent/operations.ts removeClientRows):
  // one lock order on PostgreSQL (review 2026-12-08: a re-fetch during a removal deadlocked).
  await stores.transaction(async () => {
    await stores.clientsMeta.recordCimdFetch({
      client_id: clientId,
      client_name: metadata.client_name,
      redirect_hosts: redirectHosts(metadata.redirect_uris).join(' '),
      // Request-derived strings at rest are capped, a cut marked (DESIGN §9, src/audit/limits.ts).
      ip: capOptional(who.ip),
      user_agent: capOptional(who.userAgent),
      fetchedAt: outcome.fetchedAt,
      expiresAt: outcome.expiresAt,
    });
    await stores.models.upsert('Client', clientId, clientPayload(metadata), undefined);
  });
  if (!outcome.fromCache) {
    await audit.record({
      event: 'cimd.fetched',
      clientId: audited(clientId),
      ip: who.ip,
      requestId: who.requestId,
      details: { client_name: metadata.client_name, redirect_uris: metadata.redirect_uris, expires_at: new Date(outcome.expiresAt).toISOString() },
    });
  }
  return { ok: true };
}

export function createCimdClients(deps: CimdClientsDeps): CimdClients {
  const { config, stores } = deps;
  const trust = trustPolicyOf(config);
  const resolver = createClientIdMetadataResolver({
    fetch: { ...trust, ...deps.fetch },
    ...(deps.fetch?.maxConcurrentFetches !== undefined ? { maxConcurrentFetches: deps.fetch.maxConcurrentFetches } : {}),
    ...(deps.fetch?.maxFetchesPerRequester !== undefined ? { maxFetchesPerRequester: deps.fetch.maxFetchesPerRequester } : {}),
    ...(deps.fetch?.maxFetchesPerDestination !== undefined ? { maxFetchesPerDestination: deps.fetch.maxFetchesPerDestination } : {}),
    admission: { redirectSchemes: config.redirectSchemes },
    now: deps.now ?? Date.now,
  });
  const inflight = new Map<string, Promise<EnsureResult>>();

  async function resolve(clientId: string, who: Requester): Promise<EnsureResult> {
    if (await stores.clientsMeta.isDisabled(clientId)) return { ok: true }; // the provider refuses it as unknown
    const outcome = await resolver.get(clientId, requesterOf(who.ip));
    // P's own overload says nothing about the client's document: 503, nothing counted or audited.
    if (!outcome.ok && outcome.reason === 'busy') return { ok: false, reason: 'busy', detail: outcome.detail };
    if (!outcome.ok) return noteRefusal(deps, clientId, outcome, who);
    if (outcome.fromCache && (await stores.models.find('Client', clientId))) return { ok: true };
    return storeClient(deps, clientId, outcome, who);
  }

  const ensure = (clientId: string, who: Requester): Promise<EnsureResult> => {
    const running = inflight.get(clientId);
    if (running) return running;
    const flight = resolve(clientId, who).finally(() => inflight.delete(clientId));
    inflight.set(clientId, flight);
    return flight;
  };

  return {
    enabled: config.cimd.enabled,
    isCimdClientId: (clientId): clientId is string => config.cimd.enabled && looksLikeClientIdUrl(clientId),
    ensure,
    isStored: async (clientId) => (await stores.models.find('Client', clientId)) !== undefined,
    async ensureStored(clientId, who) {
      if (!(await stores.models.find('Client', clientId))) return { ok: true }; // unknown to the provider: invalid_client
      const check = checkClientIdUrl(clientId, trust);
      if (check.ok) return { ok: true };
      await deps.audit.record({ event: 'cimd.refused', reason: check.reason, clientId: audited(clientId), ip: who.ip, requestId: who.requestId, details: { detail: check.detail, stored: true } });
      return { ok: false, reason: check.reason, detail: check.detail };
    },
  };
}
