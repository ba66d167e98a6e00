/**
 * Whether P's consent page is shown or skipped (DESIGN §2 step 4) — the one module that decides
 * it. Pure: the facts in, a decision with its reason out; src/flow/4-consent.ts gathers the facts
 * and acts on the decision.
 *
 * The page is skipped only when ALL hold (CONS-02, CONS-13, CONS-16):
 *   - the client did not ask for `prompt=consent` or `prompt=login`;
 *   - the browser carries a valid P session (browser_sessions) for subject S;
 *   - S's latest consent for exactly this client_id, redirect_uri and resource is active
 *     (src/consent/status.ts) and its scopes include every requested scope (`coverage`);
 *   - the consent's grant still exists;
 *   - the consent was approved in THIS browser: its `browser_hash` equals SHA-256 of the
 *     `__Host-mcp-browser` id this request carries (src/session/browser.ts): another browser of
 *     the same user, or a session opened there by any other means, is asked again. Consents
 *     without a binding (written before migration 0009-consent-browser-binding) never skip;
 *   - the navigation was not initiated by another site: `Sec-Fetch-Site` is `none` or
 *     `same-origin`; absent ⇒ ask (AT-06, FastMCP GHSA-6x8h-498w-gv8c).
 * Each "no" has its own reason code, recorded with consent.shown.
 *
 * Step-up (`grantedBefore`; MCP 2026-07-28 Authz §Step-Up Authorization Flow, CONS-13): when the
 * page is shown for a request wider than what the same user already granted the same client,
 * redirect URI and resource IN THIS BROWSER (the latest consent, still active), the page lists
 * those scopes as already allowed next to the new ones, and the approval keeps them: the consent
 * recorded then covers the union (src/consent/record.ts). A consent of another key, browser or
 * user, revoked or expired, carries nothing over.
 */
import { safeEqual } from '../crypto/keys.js';
import { startedHere } from '../http/fetch-metadata.js';
import type { Consent } from '../store/consents.js';
import { consentStatus } from './status.js';

/** What the client asked for, as the interaction recorded it after oidc-provider validated it. */
export interface ConsentRequest {
  clientId: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
}

export type ShowReason =
  | 'prompt_requested'
  | 'no_session'
  | 'no_consent'
  | 'revoked'
  | 'expired'
  | 'other_key'
  | 'resource_mismatch'
  | 'scopes_not_covered'
  | 'grant_missing'
  | 'browser_unbound'
  | 'other_browser'
  | 'fetch_metadata_absent'
  | 'cross_site';

export type ConsentDecision = { skip: true; consent: Consent } | { skip: false; reason: ShowReason };

/** CONS-13: what a consent covers of a request — the same key, the same resource, every scope. */
export function coverage(consent: Consent, subject: string, request: ConsentRequest): 'covered' | 'other_key' | 'resource_mismatch' | 'scopes_not_covered' {
  if (consent.subject !== subject || consent.client_id !== request.clientId || consent.redirect_uri !== request.redirectUri) return 'other_key';
  if (consent.resource !== request.resource) return 'resource_mismatch';
  const granted = new Set(consent.scopes.split(' '));
  return request.scopes.every((s) => granted.has(s)) ? 'covered' : 'scopes_not_covered';
}

/**
 * Step-up: the scopes of `consent` that an approval by `subject` in the browser `browserHash` of `request` keeps (see the
 * module comment). `shown`, at the callback: only those the consent page showed as already allowed (AT-23: the page is
 * drawn for P's session in the browser, the callback for the account U signed in; two tabs each show their own request).
 */
export function grantedBefore(
  consent: Consent | undefined,
  subject: string | undefined,
  request: Omit<ConsentRequest, 'scopes'>,
  browserHash: string | undefined,
  now: number,
  shown?: readonly string[],
): string[] {
  if (!consent || !subject || browserHash === undefined || consent.browser_hash === null) return [];
  if (coverage(consent, subject, { ...request, scopes: [] }) !== 'covered' || consentStatus(consent, now) !== 'active') return [];
  if (!safeEqual(consent.browser_hash, browserHash)) return [];
  const granted = consent.scopes.split(' ').filter(Boolean);
  return shown === undefined ? granted : granted.filter((scope) => shown.includes(scope));
}

/** The interaction's parameters as a ConsentRequest (the resource defaults to the MCP resource). */
export function requestOf(params: Record<string, unknown>, defaultResource: string): ConsentRequest {
  return {
    clientId: String(params.client_id),
    redirectUri: String(params.redirect_uri),
    resource: typeof params.resource === 'string' ? params.resource : defaultResource,
    scopes: String(params.scope ?? '')
      .split(' ')
      .filter(Boolean),
  };
}

export function promptRequested(params: Record<string, unknown>): boolean {
  const prompt = String(params.prompt ?? '').split(' ');
  return prompt.includes('consent') || prompt.includes('login');
}

/** The skip rule (see the module comment). Pure. */
export function decideConsent(input: {
  subject: string | undefined;
  latest: Consent | undefined;
  request: ConsentRequest;
  /** SHA-256 of this request's browser id, undefined when it carries none */
  browserHash: string | undefined;
  secFetchSite: string | undefined;
  promptRequested: boolean;
  grantExists: (grantId: string) => boolean;
  now: number;
}): ConsentDecision {
  const { subject, latest, request } = input;
  if (input.promptRequested) return { skip: false, reason: 'prompt_requested' };
  if (!subject) return { skip: false, reason: 'no_session' };
  if (!latest) return { skip: false, reason: 'no_consent' };
  const status = consentStatus(latest, input.now);
  if (status !== 'active') return { skip: false, reason: status };
  const covers = coverage(latest, subject, request);
  if (covers !== 'covered') return { skip: false, reason: covers };
  if (!input.grantExists(latest.grant_id)) return { skip: false, reason: 'grant_missing' };
  // CONS-02/CONS-16: remembered only in the browser that approved; legacy rows never skip.
  if (latest.browser_hash === null) return { skip: false, reason: 'browser_unbound' };
  if (input.browserHash === undefined || !safeEqual(latest.browser_hash, input.browserHash)) return { skip: false, reason: 'other_browser' };
  if (input.secFetchSite === undefined) return { skip: false, reason: 'fetch_metadata_absent' };
  if (!startedHere(input.secFetchSite)) return { skip: false, reason: 'cross_site' };
  return { skip: true, consent: latest };
}
