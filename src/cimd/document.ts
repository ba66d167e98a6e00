/**
 * CIMD — what P takes from a fetched Client ID Metadata Document (issue 12, DESIGN §10). Pure.
 * The one module that decides whether a document is acceptable and which of its members P uses.
 *
 * Enforces:
 * - CIMD-02 (CIMD §4 / draft-00 §4.1; MCP 2025-11-25 "Client ID Metadata Documents",
 *   Implementation Requirements): a JSON object whose `client_id` equals the URL it was fetched
 *   from, by simple string comparison (RFC 3986 §6.2.1) — no normalisation on either side; and
 *   "contains required fields": `client_id`, `client_name`, `redirect_uris` (MCP: "The metadata
 *   document MUST include at least … client_id, client_name, redirect_uris"; the authorization
 *   server "MUST validate the document … contains required fields").
 * - CIMD-03 groundwork / REG-04/05/06 / AUTHZ-01: every redirect URI passes the SAME admission
 *   policy as Dynamic Client Registration (`checkRedirectUri` of the registration module: https,
 *   http on loopback, allow-listed private-use schemes, canonical spelling, no fragment, userinfo,
 *   wildcard or dot segments), at most MAX_REDIRECT_URIS, duplicates removed.
 * - REG-10 / AT-17: `client_name` passes the DCR display-text rule (`checkDisplayText`), stored in
 *   NFC and trimmed.
 * - CIMD-04 (CIMD §4.1 "Credential and Key Material Restrictions"): `client_secret` or
 *   `client_secret_expires_at` present, or a shared-secret `token_endpoint_auth_method`
 *   (client_secret_basic, client_secret_post, client_secret_jwt) ⇒ refused.
 * - Decision (`private_key_jwt` and other key-based methods): CIMD §6.2 says that when a document
 *   declares `private_key_jwt` the authorization server MUST then require that authentication
 *   with the document's keys. P authenticates no CIMD client (that would mean fetching
 *   `jwks_uri`, a second client-supplied URL) — so such a document is REFUSED, not silently
 *   downgraded to a public client. Only `none` (or no method) is accepted: CIMD clients are
 *   public clients, protected by PKCE like every client of P.
 * - Nothing else is trusted: the result holds only what P uses — client_id, client_name,
 *   redirect_uris, client_uri and logo_uri (kept only when https, canonical and without userinfo;
 *   dropped otherwise — they are shown as text, never fetched: REG-10), grant_types narrowed to
 *   authorization_code/refresh_token (authorization_code required), response_types ['code'],
 *   token_endpoint_auth_method 'none', and application_type derived from the redirect URIs
 *   (native ⇔ a loopback or private-use redirect, REG-12/F9) rather than taken from the document.
 *   scope, jwks, jwks_uri, contacts, tos_uri, policy_uri, software_* and unknown members are
 *   ignored.
 * - interop F7: members whose value is "" or null count as absent (as in DCR).
 */
import { MAX_CLIENT_NAME, MAX_REDIRECT_URIS, type AdmissionPolicy } from '../oauth/admission.js';
import { checkDisplayText } from '../oauth/display-text.js';
import { checkRedirectUri, MAX_URI_LENGTH } from '../oauth/redirect-uri.js';
import { LOOPBACK_REDIRECT_HOSTS } from '../config/urls.js';
import { withoutUserinfo } from '../audit/limits.js';

const SUPPORTED_GRANTS = ['authorization_code', 'refresh_token'] as const;
type SupportedGrant = (typeof SUPPORTED_GRANTS)[number];
/** CIMD §4.1: methods "based around a shared symmetric secret". */
const SHARED_SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);

/** The normalised metadata P keeps for a CIMD client: nothing else from the document. */
export interface ClientIdMetadata {
  client_id: string;
  client_name: string;
  redirect_uris: string[];
  client_uri?: string;
  logo_uri?: string;
  grant_types: SupportedGrant[];
  response_types: ['code'];
  token_endpoint_auth_method: 'none';
  application_type: 'web' | 'native';
}

export type DocumentRefusal =
  'not_object' | 'client_id_mismatch' | 'redirect_uris' | 'redirect_uri' | 'client_name' | 'shared_secret' | 'token_endpoint_auth_method' | 'grant_types' | 'response_types';

export type DocumentCheck =
  | { ok: true; metadata: ClientIdMetadata }
  /** `rule`: the admission policy's reason code when one redirect URI is refused */
  | { ok: false; reason: DocumentRefusal; detail: string; rule?: string };

/** Bounded, printable rendering of a value from the document, for `detail`. */
function shown(value: unknown, max = 100): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

// eslint-disable-next-line no-control-regex -- the characters refused are control characters
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f-\u009f]/;

/** client_uri / logo_uri: https, canonical, no userinfo, bounded — else not kept. */
function httpsUri(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > MAX_URI_LENGTH || CONTROL_OR_SPACE.test(value)) return undefined;
  try {
    const url = new URL(value);
    if (url.protocol !== 'https:' || url.username || url.password || !url.hostname) return undefined;
    return value === url.href || `${value}/` === url.href ? value : undefined;
  } catch {
    return undefined;
  }
}

const absent = (value: unknown) => value === undefined || value === null || value === '';

type Step<T> = { ok: true; value: T } | { ok: false; refusal: DocumentCheck & { ok: false } };
const refuse = (reason: DocumentRefusal, detail: string, rule?: string): { ok: false; refusal: DocumentCheck & { ok: false } } => ({
  ok: false,
  refusal: rule === undefined ? { ok: false, reason, detail } : { ok: false, reason, detail, rule },
});

/** CIMD-04: no shared secret, in any form; only `none` (see the module comment). */
function checkAuthentication(doc: Record<string, unknown>): Step<'none'> {
  if ('client_secret' in doc || 'client_secret_expires_at' in doc) {
    return refuse('shared_secret', 'a metadata document must not contain client_secret or client_secret_expires_at (CIMD §4.1)');
  }
  const method = absent(doc.token_endpoint_auth_method) ? 'none' : doc.token_endpoint_auth_method;
  if (typeof method === 'string' && SHARED_SECRET_METHODS.has(method)) {
    return refuse('shared_secret', `token_endpoint_auth_method ${method} uses a shared secret, which a metadata document cannot establish (CIMD §4.1)`);
  }
  if (method !== 'none') {
    return refuse('token_endpoint_auth_method', `token_endpoint_auth_method ${shown(method)} is not supported: CIMD clients of this server are public ("none")`);
  }
  return { ok: true, value: 'none' };
}

/** REG-04/05/06 via the DCR admission policy; `native` ⇔ a loopback or private-use redirect. */
function checkRedirects(uris: unknown, policy: Pick<AdmissionPolicy, 'redirectSchemes'>): Step<{ uris: string[]; native: boolean }> {
  if (!Array.isArray(uris) || uris.length === 0) {
    return refuse('redirect_uris', 'redirect_uris must be a non-empty array (MCP 2025-11-25 required field)');
  }
  if (uris.length > MAX_REDIRECT_URIS) return refuse('redirect_uris', `at most ${MAX_REDIRECT_URIS} redirect URIs are accepted`);
  let native = false;
  for (const uri of uris) {
    if (typeof uri !== 'string') return refuse('redirect_uris', 'redirect_uris must contain strings');
    const check = checkRedirectUri(uri, policy);
    if (!check.ok) return refuse('redirect_uri', `${check.description}: ${shown(withoutUserinfo(uri), 200)}`, check.reason);
    if (check.kind !== 'https') native = true;
  }
  // A native client's https redirect URIs are claimed URIs, never a loopback host (RFC 8252 §7.2,
  // §8.4): oidc-provider refuses such a client when it loads it, so a document P stored with one was
  // a client no authorization could use (review 2026-12-07). Refused here, like at /register.
  const loopback = native && (uris as string[]).find((uri) => uri.startsWith('https:') && LOOPBACK_REDIRECT_HOSTS.has(new URL(uri).hostname));
  if (loopback)
    return refuse(
      'redirect_uri',
      `a client with loopback or private-use redirect URIs is native, and its https redirect URIs must not use a loopback host: ${shown(loopback, 200)}`,
      'https_loopback_native',
    );
  return { ok: true, value: { uris: [...new Set(uris as string[])], native } };
}

/** REG-10 via the DCR display-text rule; required by MCP 2025-11-25. */
function checkName(value: unknown): Step<string> {
  if (absent(value)) return refuse('client_name', 'client_name is required (MCP 2025-11-25 required field)');
  const name = checkDisplayText(value, MAX_CLIENT_NAME);
  if (!name.ok) return refuse('client_name', `client_name ${name.problem}`);
  const clientName = name.text.trim();
  if (!clientName) return refuse('client_name', 'client_name is required (MCP 2025-11-25 required field)');
  return { ok: true, value: clientName };
}

/** grant_types narrowed to what P supports (authorization_code required); response_types must allow code. */
function checkGrants(doc: Record<string, unknown>): Step<SupportedGrant[]> {
  const grants = absent(doc.grant_types) ? ['authorization_code'] : doc.grant_types;
  if (!Array.isArray(grants) || grants.some((g) => typeof g !== 'string')) return refuse('grant_types', 'grant_types must be an array of strings');
  const keptGrants = SUPPORTED_GRANTS.filter((g) => grants.includes(g));
  if (!keptGrants.includes('authorization_code')) return refuse('grant_types', 'grant_types must include authorization_code');
  const responseTypes = absent(doc.response_types) ? ['code'] : doc.response_types;
  if (!Array.isArray(responseTypes) || !responseTypes.includes('code')) return refuse('response_types', 'response_types must include code');
  return { ok: true, value: keptGrants };
}

/**
 * Validate a fetched document against the URL it was fetched from (the raw client_id string) and
 * the DCR admission policy. Pure.
 */
export function validateClientMetadataDocument(document: unknown, fetchedUrl: string, policy: Pick<AdmissionPolicy, 'redirectSchemes'>): DocumentCheck {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return { ok: false, reason: 'not_object', detail: 'the metadata document must be a JSON object (CIMD §4)' };
  }
  const doc = document as Record<string, unknown>;
  // CIMD-02: exact string equality with the URL fetched.
  if (doc.client_id !== fetchedUrl) {
    return { ok: false, reason: 'client_id_mismatch', detail: `the document's client_id ${shown(doc.client_id)} is not the URL it was fetched from (CIMD §4)` };
  }
  const auth = checkAuthentication(doc);
  if (!auth.ok) return auth.refusal;
  const redirects = checkRedirects(doc.redirect_uris, policy);
  if (!redirects.ok) return redirects.refusal;
  const name = checkName(doc.client_name);
  if (!name.ok) return name.refusal;
  const grants = checkGrants(doc);
  if (!grants.ok) return grants.refusal;

  const metadata: ClientIdMetadata = {
    client_id: fetchedUrl,
    client_name: name.value,
    redirect_uris: redirects.value.uris,
    grant_types: grants.value,
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    application_type: redirects.value.native ? 'native' : 'web',
  };
  const clientUri = httpsUri(doc.client_uri);
  if (clientUri !== undefined) metadata.client_uri = clientUri;
  const logoUri = httpsUri(doc.logo_uri);
  if (logoUri !== undefined) metadata.logo_uri = logoUri;
  return { ok: true, metadata };
}
