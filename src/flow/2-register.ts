/**
 * Step 1 — Dynamic Client Registration admission policy (DESIGN §2 step 2). The one module that
 * decides which self-registered clients may exist. Runs before oidc-provider sees the body.
 *
 * Enforces:
 * - REG-04/05: redirect URIs are absolute https, or http on a loopback host; no fragment, no
 *   userinfo, no wildcard, no dot segments, no control characters; javascript:, data:, file:…
 *   never; at most MAX_REDIRECT_URIS.
 * - AUTHZ-01 / REG-05: redirect URIs only in canonical form — the string must equal its WHATWG URL
 *   serialisation (lower-case scheme and host, no default port, `/` not `\`, `scheme://` spelled
 *   out, ASCII (punycode) host, canonical IPv4/IPv6, percent-encoded path and query); the only
 *   difference allowed is the `/` of an empty path (`http://127.0.0.1:8080`). /authorize compares
 *   the client's string with the registered one exactly, and P, the browser and the client must all
 *   read one URL with one host from it. Non-canonical forms are refused, not rewritten: a client
 *   keeps sending its own spelling, which would then never match.
 * - REG-06: private-use schemes only from the configured allowlist (REDIRECT_SCHEMES).
 * - REG-12 / interop F9: clients with loopback or private-use redirect URIs are registered as
 *   native, which gives them RFC 8252 §7.3 loopback-port matching at /authorize (oidc-provider
 *   Client#redirectUriAllowed: exact string match, only the port of a loopback URI may vary).
 * - REG-10 / AT-17: client_name length-limited; it and the other displayed text members
 *   (software_id, software_version, contacts) pass `checkDisplayText`: stored in NFC; no control,
 *   format, private-use or lone-surrogate characters, nothing Default_Ignorable (invisible: U+3164,
 *   U+00AD, U+180E, tag characters, variation selectors, ZWJ/ZWNJ…), no Bidi_Control (U+061C,
 *   U+202E…), no line or paragraph separator (U+2028/2029); combining marks only on a base
 *   character, at most 4 nonspacing marks in a row and never the same one twice (UTS #39 §5.4),
 *   which refuses zalgo and stacked marks but keeps names in scripts that need marks (Devanagari,
 *   Thai, Vietnamese, Hebrew, Arabic, Tibetan). Look-alike names are warned about on the consent
 *   page (src/oauth/lookalike.ts), not refused here.
 * - REG-02/09: unknown members dropped; grant_types and response_types narrowed to what P
 *   supports; requested scopes narrowed to P's; the response echoes what was stored.
 * - interop F7: empty-string members dropped (real clients send them).
 * - interop F10 / deps gotcha 12: a client that omits token_endpoint_auth_method is registered
 *   as public (`none`), so no unused secret is issued; PKCE is required for every client anyway.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Audit } from '../audit/audit.js';
import { refusalOf } from '../errors/oauth-error.js';

/** RFC 8252 §7.3 loopback hosts, as oidc-provider matches them. */
export const LOOPBACK_REDIRECT_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
/** Enough for every client seen (VS Code registers 6); more is abuse (AT-17). */
export const MAX_REDIRECT_URIS = 10;
/** Longest accepted URI; real callbacks are far shorter. */
export const MAX_URI_LENGTH = 2000;
/** Longest accepted client_name; the consent page must stay readable (AT-17). */
export const MAX_CLIENT_NAME = 100;
/** Largest registration body; real bodies are < 1 KiB. */
export const MAX_REGISTRATION_BODY = 16 * 1024;

const NEVER_SCHEMES = new Set(['javascript', 'data', 'file', 'vbscript', 'blob', 'about', 'ftp', 'ws', 'wss', 'filesystem']);
const SUPPORTED_GRANTS = ['authorization_code', 'refresh_token'];
const PUBLIC_OR_SECRET_METHODS = new Set(['none', 'client_secret_basic', 'client_secret_post']);
const KEPT_MEMBERS = new Set([
  'redirect_uris', 'client_name', 'client_uri', 'logo_uri', 'tos_uri', 'policy_uri', 'contacts', 'grant_types',
  'response_types', 'token_endpoint_auth_method', 'scope', 'application_type', 'software_id', 'software_version',
]);
// C0, DEL, C1, and the invisible/bidi formatting characters used for spoofing (Trojan Source).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/;

export interface AdmissionPolicy {
  /** private-use schemes allowed for native clients (REDIRECT_SCHEMES) */
  redirectSchemes: readonly string[];
  /** every scope P offers */
  supportedScopes: readonly string[];
}

export type AdmissionResult =
  | { ok: true; metadata: Record<string, unknown>; native: boolean }
  | { ok: false; error: 'invalid_redirect_uri' | 'invalid_client_metadata'; description: string; reason: string };

const reject = (error: 'invalid_redirect_uri' | 'invalid_client_metadata', reason: string, description: string): AdmissionResult => ({
  ok: false,
  error,
  reason,
  description,
});

type UriCheck = { ok: true; kind: 'https' | 'loopback' | 'private' } | { ok: false; reason: string; description: string };

/** Classify one redirect URI or say why it is refused. */
export function checkRedirectUri(raw: string, policy: Pick<AdmissionPolicy, 'redirectSchemes'>): UriCheck {
  const no = (reason: string, description: string): UriCheck => ({ ok: false, reason, description });
  if (raw.length > MAX_URI_LENGTH) return no('too_long', `redirect URI longer than ${MAX_URI_LENGTH} characters`);
  if (CONTROL_CHARS.test(raw) || /\s/.test(raw)) return no('control_characters', 'redirect URI contains whitespace or control characters');
  if (raw.includes('*')) return no('wildcard', 'redirect URI contains a wildcard; register exact URIs');
  if (raw.includes('#')) return no('fragment', 'redirect URI must not contain a fragment (RFC 6749 §3.1.2)');
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw);
  if (!schemeMatch) return no('not_absolute', 'redirect URI must be an absolute URI');
  const scheme = (schemeMatch[1] as string).toLowerCase();
  if (NEVER_SCHEMES.has(scheme)) return no('scheme_forbidden', `redirect URI scheme "${scheme}:" is never allowed`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return no('not_absolute', 'redirect URI must be an absolute URI');
  }
  if (url.username || url.password || /^[a-z][a-z0-9+.-]*:\/\/[^/?]*@/i.test(raw)) {
    return no('userinfo', 'redirect URI must not contain user information (user@host)');
  }
  if (/(^|\/)(\.|%2e){1,2}(\/|\?|$)/i.test(raw.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, ''))) {
    return no('dot_segments', 'redirect URI must not contain "." or ".." path segments');
  }
  // AUTHZ-01: one spelling per URL (see the header); `${raw}/` is the empty path, e.g. http://127.0.0.1:8080.
  if (raw !== url.href && `${raw}/` !== url.href) {
    return no('not_canonical', `redirect URI must be written in canonical form (register ${JSON.stringify(url.href.slice(0, 200))})`);
  }
  if (scheme === 'https') {
    if (!url.hostname) return no('not_absolute', 'https redirect URI needs a host');
    return { ok: true, kind: 'https' };
  }
  if (scheme === 'http') {
    if (!LOOPBACK_REDIRECT_HOSTS.has(url.hostname)) {
      return no('http_not_loopback', 'plain http redirect URIs are only allowed for localhost, 127.0.0.1 and [::1]; use https');
    }
    return { ok: true, kind: 'loopback' };
  }
  if (!policy.redirectSchemes.includes(scheme)) {
    return no('scheme_not_allowed', `private-use scheme "${scheme}:" is not on this server's allowlist (REDIRECT_SCHEMES)`);
  }
  return { ok: true, kind: 'private' };
}

/**
 * REG-10: characters that are invisible, reorder or break the text around them, or render as
 * anything at all: control (Cc), format (Cf), lone surrogate (Cs), private use (Co), line and
 * paragraph separators (Zl, Zp: U+2028/2029), every Default_Ignorable_Code_Point (U+3164 Hangul
 * filler, U+00AD soft hyphen, U+180E, tag characters U+E0000–E007F, variation selectors, joiners)
 * and every Bidi_Control (U+061C, U+200E/F, U+202A–202E, U+2066–2069).
 */
const HIDDEN_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;
/** UTS #39 §5.4: more than four nonspacing marks in a row, or the same one twice in a row (on NFD). */
const STACKED_MARKS = /[\p{Mn}\p{Me}]{5}|([\p{Mn}\p{Me}])\1/u;
/** A combining mark with no base: at the start, or after a space, punctuation or symbol. */
const DETACHED_MARK = /(^|[^\p{L}\p{N}\p{M}])\p{M}/u;

/**
 * The displayed-text rule (REG-10, AT-17): NFC first, then the checks above on the text and on
 * its NFD form (where the mark rules of UTS #39 §5.4 apply). Returns the NFC text to store.
 */
export function checkDisplayText(value: unknown, max: number): { ok: true; text: string } | { ok: false; problem: string } {
  if (typeof value !== 'string') return { ok: false, problem: 'must be a string' };
  const text = value.normalize('NFC');
  if (text.length > max) return { ok: false, problem: `must be at most ${max} characters` };
  if (HIDDEN_OR_CONTROL.test(text)) {
    return { ok: false, problem: 'must not contain control, format, invisible or bidirectional-control characters, or line/paragraph separators' };
  }
  const decomposed = text.normalize('NFD');
  if (DETACHED_MARK.test(decomposed) || STACKED_MARKS.test(decomposed)) {
    return { ok: false, problem: 'must not contain combining marks without a base letter, stacked more than four deep, or repeated' };
  }
  return { ok: true, text };
}

function checkText(value: unknown, max: number): string | undefined {
  const result = checkDisplayText(value, max);
  return result.ok ? undefined : result.problem;
}

function isWebUrl(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > MAX_URI_LENGTH || CONTROL_CHARS.test(value)) return false;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_REDIRECT_HOSTS.has(url.hostname));
  } catch {
    return false;
  }
}

/** Decide whether a registration body is admitted, and normalise it. Pure. */
export function admitRegistration(body: unknown, policy: AdmissionPolicy): AdmissionResult {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    return reject('invalid_client_metadata', 'not_an_object', 'registration body must be a JSON object');
  }
  const input: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) {
    if (value === '' || value === null) continue; // F7
    if (KEPT_MEMBERS.has(name)) input[name] = value; // REG-02: anything else is ignored
  }

  const uris = input.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0) {
    return reject('invalid_redirect_uri', 'missing', 'redirect_uris must be a non-empty array (RFC 7591 §2)');
  }
  if (uris.length > MAX_REDIRECT_URIS) {
    return reject('invalid_redirect_uri', 'too_many', `at most ${MAX_REDIRECT_URIS} redirect URIs may be registered`);
  }
  let native = false;
  for (const uri of uris) {
    if (typeof uri !== 'string') return reject('invalid_redirect_uri', 'not_a_string', 'redirect_uris must contain strings');
    const check = checkRedirectUri(uri, policy);
    if (!check.ok) return reject('invalid_redirect_uri', check.reason, `${check.description}: ${JSON.stringify(uri.slice(0, 200))}`);
    if (check.kind !== 'https') native = true;
  }
  const metadata: Record<string, unknown> = { ...input, redirect_uris: [...new Set(uris as string[])] };

  if (input.client_name !== undefined) {
    const name = checkDisplayText(input.client_name, MAX_CLIENT_NAME);
    if (!name.ok) return reject('invalid_client_metadata', 'client_name', `client_name ${name.problem}`);
    metadata.client_name = name.text.trim();
  }
  for (const member of ['software_id', 'software_version']) {
    if (input[member] !== undefined) {
      const text = checkDisplayText(input[member], 200);
      if (!text.ok) return reject('invalid_client_metadata', member, `${member} ${text.problem}`);
      metadata[member] = text.text;
    }
  }
  for (const name of ['client_uri', 'logo_uri', 'tos_uri', 'policy_uri']) {
    if (input[name] !== undefined && !isWebUrl(input[name])) {
      return reject('invalid_client_metadata', name, `${name} must be an https URL`);
    }
  }
  if (input.contacts !== undefined && (!Array.isArray(input.contacts) || input.contacts.some((c) => checkText(c, 200)))) {
    return reject('invalid_client_metadata', 'contacts', 'contacts must be an array of e-mail addresses');
  }

  if (input.application_type !== undefined && input.application_type !== 'web' && input.application_type !== 'native') {
    return reject('invalid_client_metadata', 'application_type', 'application_type must be "web" or "native"');
  }
  metadata.application_type = native ? 'native' : (input.application_type ?? 'web');

  const method = input.token_endpoint_auth_method ?? 'none';
  if (typeof method !== 'string' || !PUBLIC_OR_SECRET_METHODS.has(method)) {
    return reject('invalid_client_metadata', 'token_endpoint_auth_method', 'token_endpoint_auth_method must be none, client_secret_basic or client_secret_post');
  }
  metadata.token_endpoint_auth_method = method;

  const grants = input.grant_types ?? ['authorization_code'];
  if (!Array.isArray(grants) || grants.some((g) => typeof g !== 'string')) {
    return reject('invalid_client_metadata', 'grant_types', 'grant_types must be an array of strings');
  }
  const keptGrants = SUPPORTED_GRANTS.filter((g) => grants.includes(g));
  if (!keptGrants.includes('authorization_code')) {
    return reject('invalid_client_metadata', 'grant_types', 'grant_types must include authorization_code');
  }
  metadata.grant_types = keptGrants;

  const responseTypes = input.response_types ?? ['code'];
  if (!Array.isArray(responseTypes) || !responseTypes.includes('code')) {
    return reject('invalid_client_metadata', 'response_types', 'response_types must include code');
  }
  metadata.response_types = ['code'];

  if (input.scope !== undefined) {
    if (typeof input.scope !== 'string') return reject('invalid_client_metadata', 'scope', 'scope must be a string');
    const kept = input.scope.split(' ').filter((s) => policy.supportedScopes.includes(s));
    if (kept.length) metadata.scope = [...new Set(kept)].join(' ');
    else delete metadata.scope;
  }

  return { ok: true, metadata, native };
}

/** Host (or scheme, for private-use URIs) of each redirect URI, for provenance and the admin UI. */
export function redirectHosts(uris: readonly string[]): string[] {
  return [
    ...new Set(
      uris.map((u) => {
        try {
          const url = new URL(u);
          return url.host || `${url.protocol}`;
        } catch {
          return u;
        }
      }),
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// HTTP: POST /register runs the policy before oidc-provider (which reads the normalised body).


function refuse(res: Response, status: number, error: string, description: string): void {
  res.status(status).setHeader('Cache-Control', 'no-store');
  res.json({ error, error_description: description });
}

/** Parse, check and normalise a registration; answers RFC 7591 §3.2.2 errors itself. */
export function registrationGate(policy: AdmissionPolicy, audit: Audit): RequestHandler[] {
  const parse = express.json({ limit: MAX_REGISTRATION_BODY, type: () => true });
  return [
    (req: Request, res: Response, next: NextFunction) => {
      if (!req.is('application/json')) {
        audit.record({ event: 'registration.rejected', reason: 'content_type' });
        return refuse(res, 400, 'invalid_client_metadata', 'registration requests must be application/json (RFC 7591 §3.1)');
      }
      parse(req, res, (err?: unknown) => {
        if (!err) return next();
        // DESIGN §9: the status comes from the one error mapping; anything it does not know is a
        // bug and goes to the error handler (500, logged).
        const refusal = refusalOf(err);
        if (!refusal) return next(err);
        const tooLarge = refusal.reason === 'body_too_large';
        const malformed = refusal.reason === 'malformed_body';
        audit.record({ event: 'registration.rejected', reason: malformed ? 'malformed_json' : refusal.reason });
        if (tooLarge) return refuse(res, 413, 'invalid_client_metadata', `registration body exceeds ${MAX_REGISTRATION_BODY} bytes`);
        return refuse(res, refusal.status, 'invalid_client_metadata', malformed ? 'registration body is not valid JSON' : refusal.description);
      });
    },
    (req: Request, res: Response, next: NextFunction) => {
      const result = admitRegistration(req.body, policy);
      if (!result.ok) {
        audit.record({
          event: 'registration.rejected',
          reason: `${result.error}:${result.reason}`,
          details: { error_description: result.description, client_name: typeof req.body?.client_name === 'string' ? req.body.client_name.slice(0, 200) : undefined },
        });
        return refuse(res, 400, result.error, result.description);
      }
      req.body = result.metadata;
      next();
    },
  ];
}
