/**
 * Consents as people read them — the presenters shared by the consent page, the admin pages and
 * /account (no decision is made here: the status comes from src/consent/status.ts):
 * - `consentPageView`: everything the consent page shows (CONS-05/06/07, AT-17): the client's
 *   self-asserted name marked unverified, a warning when it imitates a well-known client or mixes
 *   scripts in a word (src/oauth/lookalike.ts), for a CIMD client the host that published its
 *   metadata ("vscode.dev says this is …", issue 12), the client id and registration date, the redirect
 *   URI with its host prominent and a note for loopback, the scopes in plain words, the upstream
 *   and the exact upstream scopes (UP-03), the resource, and how long the client stays connected
 *   (`connectionTerms`);
 * - `presentConsent` / `consentsWithClientNames`: the rows of a consents table.
 */
import { isLoopbackHost } from '../config/urls.js';
import { describeScope } from '../oauth/scopes.js';
import { lookalikeOf } from '../oauth/lookalike.js';
import type { Consent } from '../store/consents.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import { consentStatus } from './status.js';
import type { ConsentRequest } from './decision.js';

/** Plain words for a duration in seconds: "90 days", "1 hour", "45 seconds". */
export function durationInWords(seconds: number): string {
  for (const [unit, size] of [
    ['day', 86_400],
    ['hour', 3600],
    ['minute', 60],
    ['second', 1],
  ] as const) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${unit}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}

/**
 * What the page says about how long the client stays connected. A client that registered the
 * `refresh_token` grant gets refresh tokens (F8, src/provider/configuration.ts) and so can keep
 * going without the user until the consent (and its grant) expires, CONSENT_TTL after approval,
 * as long as it renews within each refresh token's REFRESH_TOKEN_TTL (they rotate, each with a
 * fresh lifetime), or until revoked; one without it gets ACCESS_TOKEN_TTL at a time.
 */
export function connectionTerms(refreshable: boolean, ttl: { consent: number; refreshToken: number; accessToken: number }) {
  if (!refreshable) return { refreshable: false as const, access: durationInWords(ttl.accessToken) };
  return { refreshable: true as const, upTo: durationInWords(ttl.consent), renewEvery: ttl.refreshToken < ttl.consent ? durationInWords(ttl.refreshToken) : undefined };
}

export interface ConsentPageFacts {
  request: ConsentRequest;
  client: { name: string | undefined; registeredAt: number | undefined; redirectUris: readonly string[]; refreshable: boolean; cimd?: boolean };
  upstream: { name: string; scopes: readonly string[] };
  ttl: { consent: number; refreshToken: number; accessToken: number };
  signedInAs: string | undefined;
  /** step-up: what this user already granted this client here, in this browser (`grantedBefore`, src/consent/decision.ts) */
  grantedBefore?: readonly string[];
  /** MCP_TOOL_SCOPES: a scope it lists is described with the tools it is needed for */
  toolScopes?: readonly { tool: string; scope: string }[];
}

/**
 * The scopes the page lists. On a step-up (something already granted), the union the approval
 * records, each marked `new` or `granted` (already allowed), the already allowed first.
 */
function scopeList(requested: readonly string[], before: readonly string[], toolScopes: ConsentPageFacts['toolScopes']) {
  if (!before.length) return requested.map((s) => ({ name: s, description: describeScope(s, toolScopes), status: undefined }));
  const union = [...new Set([...before, ...requested])];
  return union.map((s) => ({ name: s, description: describeScope(s, toolScopes), status: before.includes(s) ? ('granted' as const) : ('new' as const) }));
}

/** The host of a CIMD client_id (the site that published the client's metadata), or undefined. */
export function vouchingHost(clientId: string): string | undefined {
  try {
    return new URL(clientId).host || undefined;
  } catch {
    return undefined;
  }
}

/** The consent page's data (views/consent.eta), from the facts the step gathered. */
export function consentPageView(facts: ConsentPageFacts) {
  const { request, client } = facts;
  const redirect = new URL(request.redirectUri);
  return {
    client: {
      id: request.clientId,
      name: client.name,
      registeredAt: client.registeredAt ? new Date(client.registeredAt).toISOString().slice(0, 10) : undefined,
      lookalike: lookalikeOf(client.name, client.redirectUris),
      // Issue 12: a CIMD client's name comes from a document its client_id host published; that host vouches for it.
      vouchedBy: client.cimd ? vouchingHost(request.clientId) : undefined,
    },
    redirect: {
      uri: request.redirectUri,
      host: redirect.host || redirect.protocol,
      loopback: redirect.protocol === 'http:' && isLoopbackHost(redirect.hostname),
      privateScheme: redirect.protocol !== 'http:' && redirect.protocol !== 'https:',
    },
    scopes: scopeList(request.scopes, facts.grantedBefore ?? [], facts.toolScopes),
    stepUp: (facts.grantedBefore ?? []).length > 0,
    resource: request.resource,
    connection: connectionTerms(client.refreshable, facts.ttl),
    upstream: { name: facts.upstream.name, scopes: facts.upstream.scopes },
    signedInAs: facts.signedInAs,
  };
}

/** A time for tables: ISO, UTC, to the second. */
export function fmt(ms: number | null | undefined): string {
  return ms
    ? new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d{3}Z$/, ' UTC')
    : '—';
}

/** One row of a consents table (admin pages, /account). */
export function presentConsent(c: Consent, now = Date.now()) {
  let host = c.redirect_uri;
  try {
    host = new URL(c.redirect_uri).host || c.redirect_uri;
  } catch {
    // keep the raw value
  }
  const status = consentStatus(c, now);
  return {
    ...c,
    host,
    granted: fmt(c.granted_at),
    expires: fmt(c.expires_at),
    lastUsed: fmt(c.last_used_at),
    status: status === 'revoked' ? `revoked (${c.revoked_reason ?? 'unknown'})` : status,
    active: status === 'active',
  };
}

/** Consent rows with their clients' (self-asserted) names; each client read once. */
export async function consentsWithClientNames(clientsMeta: Pick<ClientsMetaStore, 'get'>, consents: Consent[]) {
  const names = new Map<string, string | null>();
  for (const c of consents) if (!names.has(c.client_id)) names.set(c.client_id, (await clientsMeta.get(c.client_id))?.client_name ?? null);
  return consents.map((c) => ({ ...presentConsent(c), clientName: names.get(c.client_id) ?? null }));
}
