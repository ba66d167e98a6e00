/**
 * The Dynamic Client Registration admission policy (DESIGN §2 step 2): the one module that decides
 * which self-registered clients may exist, and in what normalised form. Pure: a body in, a
 * decision out; src/flow/2-register.ts applies it over HTTP before oidc-provider sees the body.
 *
 * Each metadata member has its own check in MEMBER_CHECKS, run in order:
 * - redirect_uris — REG-03/04/05/06, AUTHZ-01 (src/oauth/redirect-uri.ts), at most
 *   MAX_REDIRECT_URIS; clients with loopback or private-use redirect URIs are registered as native
 *   (REG-12, interop F9), which gives them RFC 8252 §7.3 loopback-port matching at /authorize
 *   (oidc-provider Client#redirectUriAllowed: exact string match, only the port of a loopback URI
 *   may vary);
 * - client_name, software_id, software_version, contacts — REG-10 / AT-17: length-limited and
 *   through the displayed-text rule (src/oauth/display-text.ts), stored in NFC;
 * - client_uri, logo_uri, tos_uri, policy_uri — https (or loopback http) URLs only;
 * - application_type, token_endpoint_auth_method, grant_types, response_types, scope — REG-02/09:
 *   narrowed to what P supports; requested scopes narrowed to P's, plus the step-up scopes
 *   (GW-15: a registered scope is a ceiling at /authorize; `withStepUpScopes`, applied to stored
 *   clients as they are loaded too, `widenStoredClient`); interop F10 / deps gotcha 12: a
 *   client that omits token_endpoint_auth_method is public (`none`), so no unused secret is issued
 *   (PKCE is required for every client anyway).
 * Unknown members are dropped (REG-02) and empty-string members ignored (interop F7, real clients
 * send them); the response echoes what was stored.
 */
import { checkDisplayText } from './display-text.js';
import { checkRedirectUri, isWebUrl } from './redirect-uri.js';
import { withoutUserinfo } from '../audit/limits.js';

/** Enough for every client seen (VS Code registers 6); more is abuse (AT-17). */
export const MAX_REDIRECT_URIS = 10;
/** Longest accepted client_name; the consent page must stay readable (AT-17). */
export const MAX_CLIENT_NAME = 100;
/** Largest registration body; real bodies are < 1 KiB. */
export const MAX_REGISTRATION_BODY = 16 * 1024;
/** Longest software_id, software_version and contact. */
const MAX_OTHER_TEXT = 200;

const SUPPORTED_GRANTS = ['authorization_code', 'refresh_token'];
const PUBLIC_OR_SECRET_METHODS = new Set(['none', 'client_secret_basic', 'client_secret_post']);
const WEB_URI_MEMBERS = ['client_uri', 'logo_uri', 'tos_uri', 'policy_uri'] as const;

export interface AdmissionPolicy {
  /** private-use schemes allowed for native clients (REDIRECT_SCHEMES) */
  redirectSchemes: readonly string[];
  /** every scope P offers */
  supportedScopes: readonly string[];
  /** scopes a client reaches by step-up (MCP_TOOL_SCOPES, src/oauth/scopes.ts) */
  stepUpScopes?: readonly string[];
}

type AdmissionError = 'invalid_redirect_uri' | 'invalid_client_metadata';

export type AdmissionResult = { ok: true; metadata: Record<string, unknown>; native: boolean } | { ok: false; error: AdmissionError; description: string; reason: string };

type Refusal = Extract<AdmissionResult, { ok: false }>;

const reject = (error: AdmissionError, reason: string, description: string): Refusal => ({ ok: false, error, reason, description });

/** What the checks read (the kept members) and write (the normalised metadata). */
interface Admission {
  input: Record<string, unknown>;
  metadata: Record<string, unknown>;
  policy: AdmissionPolicy;
  native: boolean;
}

type MemberCheck = (a: Admission) => Refusal | undefined;

function redirectUris(a: Admission): Refusal | undefined {
  const uris = a.input.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0) return reject('invalid_redirect_uri', 'missing', 'redirect_uris must be a non-empty array (RFC 7591 §2)');
  if (uris.length > MAX_REDIRECT_URIS) return reject('invalid_redirect_uri', 'too_many', `at most ${MAX_REDIRECT_URIS} redirect URIs may be registered`);
  for (const uri of uris) {
    if (typeof uri !== 'string') return reject('invalid_redirect_uri', 'not_a_string', 'redirect_uris must contain strings');
    const check = checkRedirectUri(uri, a.policy);
    // The URI echoed without its userinfo: a password in it is neither sent back nor audited.
    if (!check.ok) return reject('invalid_redirect_uri', check.reason, `${check.description}: ${JSON.stringify(withoutUserinfo(uri).slice(0, 200))}`);
    if (check.kind !== 'https') a.native = true;
  }
  a.metadata.redirect_uris = [...new Set(uris as string[])];
  return undefined;
}

/** A displayed text member: checked, stored in NFC (client_name also trimmed). */
const displayText =
  (member: string, max: number, trim = false): MemberCheck =>
  (a) => {
    if (a.input[member] === undefined) return undefined;
    const text = checkDisplayText(a.input[member], max);
    if (!text.ok) return reject('invalid_client_metadata', member, `${member} ${text.problem}`);
    a.metadata[member] = trim ? text.text.trim() : text.text;
    return undefined;
  };

function webUris(a: Admission): Refusal | undefined {
  const bad = WEB_URI_MEMBERS.find((name) => a.input[name] !== undefined && !isWebUrl(a.input[name]));
  return bad ? reject('invalid_client_metadata', bad, `${bad} must be an https URL`) : undefined;
}

function contacts(a: Admission): Refusal | undefined {
  const value = a.input.contacts;
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((c) => !checkDisplayText(c, MAX_OTHER_TEXT).ok)) {
    return reject('invalid_client_metadata', 'contacts', 'contacts must be an array of e-mail addresses');
  }
  return undefined;
}

function applicationType(a: Admission): Refusal | undefined {
  const value = a.input.application_type;
  if (value !== undefined && value !== 'web' && value !== 'native') return reject('invalid_client_metadata', 'application_type', 'application_type must be "web" or "native"');
  a.metadata.application_type = a.native ? 'native' : (value ?? 'web');
  return undefined;
}

function tokenEndpointAuthMethod(a: Admission): Refusal | undefined {
  const method = a.input.token_endpoint_auth_method ?? 'none';
  if (typeof method !== 'string' || !PUBLIC_OR_SECRET_METHODS.has(method)) {
    return reject('invalid_client_metadata', 'token_endpoint_auth_method', 'token_endpoint_auth_method must be none, client_secret_basic or client_secret_post');
  }
  a.metadata.token_endpoint_auth_method = method;
  return undefined;
}

function grantTypes(a: Admission): Refusal | undefined {
  const grants = a.input.grant_types ?? ['authorization_code'];
  if (!Array.isArray(grants) || grants.some((g) => typeof g !== 'string')) return reject('invalid_client_metadata', 'grant_types', 'grant_types must be an array of strings');
  const kept = SUPPORTED_GRANTS.filter((g) => grants.includes(g));
  if (!kept.includes('authorization_code')) return reject('invalid_client_metadata', 'grant_types', 'grant_types must include authorization_code');
  a.metadata.grant_types = kept;
  return undefined;
}

function responseTypes(a: Admission): Refusal | undefined {
  const types = a.input.response_types ?? ['code'];
  if (!Array.isArray(types) || !types.includes('code')) return reject('invalid_client_metadata', 'response_types', 'response_types must include code');
  a.metadata.response_types = ['code'];
  return undefined;
}

function scope(a: Admission): Refusal | undefined {
  const value = a.input.scope;
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return reject('invalid_client_metadata', 'scope', 'scope must be a string');
  const kept = withStepUpScopes(
    value.split(' ').filter((s) => a.policy.supportedScopes.includes(s)),
    a.policy.stepUpScopes,
  );
  if (kept.length) a.metadata.scope = kept.join(' ');
  else delete a.metadata.scope;
  return undefined;
}

/**
 * GW-15, the one rule for a client's scope ceiling and the step-up scopes. A registered scope is a
 * ceiling at /authorize (oidc-provider: "requested scope is not allowed"). Clients register the
 * minimal set they were shown (MCP 2026-07-28 Authz §Scope Selection Strategy), so a client with a
 * ceiling (any scope at all) gets every step-up scope added, or step-up could never succeed; a
 * client without one is left without (it may already ask for any scope P offers). Applied at
 * registration (`scope` above) and to every stored client as the provider loads it
 * (`widenStoredClient`), so a tool scope configured after a client registered is within its reach too.
 */
export function withStepUpScopes(scopes: readonly string[], stepUpScopes: readonly string[] = []): string[] {
  return scopes.length ? [...new Set([...scopes, ...stepUpScopes])] : [];
}

/**
 * A stored client's metadata as the provider loads it (src/provider/configuration.ts): its `scope`
 * widened by `withStepUpScopes` under today's MCP_TOOL_SCOPES; nothing else changes, nothing is
 * written back. Not a consent: the consent page still asks the user for any scope not yet allowed.
 */
export function widenStoredClient<T extends Record<string, unknown>>(metadata: T, stepUpScopes: readonly string[]): T {
  if (typeof metadata.scope !== 'string') return metadata;
  const stored = metadata.scope.split(' ').filter(Boolean);
  const added = withStepUpScopes(stored, stepUpScopes).filter((s) => !stored.includes(s));
  return added.length ? { ...metadata, scope: `${metadata.scope} ${added.join(' ')}` } : metadata;
}

/** One check per member, in order (application_type needs what redirect_uris learnt). */
const MEMBER_CHECKS: ReadonlyArray<readonly [string, MemberCheck]> = [
  ['redirect_uris', redirectUris],
  ['client_name', displayText('client_name', MAX_CLIENT_NAME, true)],
  ['software_id', displayText('software_id', MAX_OTHER_TEXT)],
  ['software_version', displayText('software_version', MAX_OTHER_TEXT)],
  ['client_uri logo_uri tos_uri policy_uri', webUris],
  ['contacts', contacts],
  ['application_type', applicationType],
  ['token_endpoint_auth_method', tokenEndpointAuthMethod],
  ['grant_types', grantTypes],
  ['response_types', responseTypes],
  ['scope', scope],
];

/** The members kept from a registration body (REG-02: anything else is ignored). */
const KEPT_MEMBERS = new Set(MEMBER_CHECKS.flatMap(([members]) => members.split(' ')));

/** Decide whether a registration body is admitted, and normalise it. Pure. */
export function admitRegistration(body: unknown, policy: AdmissionPolicy): AdmissionResult {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    return reject('invalid_client_metadata', 'not_an_object', 'registration body must be a JSON object');
  }
  const input: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) {
    if (value === '' || value === null) continue; // F7
    if (KEPT_MEMBERS.has(name)) input[name] = value;
  }
  const admission: Admission = { input, metadata: { ...input }, policy, native: false };
  for (const [, check] of MEMBER_CHECKS) {
    const refusal = check(admission);
    if (refusal) return refusal;
  }
  return { ok: true, metadata: admission.metadata, native: admission.native };
}
