/**
 * Step 2 — Dynamic Client Registration (DESIGN §2 step 2), over HTTP: `POST /register` parses the
 * JSON body (application/json only, MAX_REGISTRATION_BODY), runs the admission policy
 * (src/oauth/admission.ts, the one module that decides which self-registered clients may exist)
 * and hands the normalised body to oidc-provider; refusals are RFC 7591 §3.2.2 JSON errors,
 * audited as registration.rejected with their reason. The policy it applies:
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
import { ERRORS, refusalOf } from '../errors/oauth-error.js';
import { admitRegistration, MAX_REGISTRATION_BODY, type AdmissionPolicy } from '../oauth/admission.js';

/** Parse, check and normalise a registration; refusals are RFC 7591 §3.2.2 errors. */
export function registrationGate(policy: AdmissionPolicy, audit: Audit): RequestHandler[] {
  const parse = express.json({ limit: MAX_REGISTRATION_BODY, type: () => true });
  return [
    async (req: Request, res: Response, next: NextFunction) => {
      if (!req.is('application/json')) {
        await audit.record({ event: 'registration.rejected', reason: 'content_type' });
        return next(ERRORS.registrationRefused('invalid_client_metadata', 'registration requests must be application/json (RFC 7591 §3.1)', 'content_type'));
      }
      parse(req, res, (err?: unknown) => {
        if (!err) return next();
        // DESIGN §9: the status comes from the one error mapping; anything it does not know is a
        // bug and goes to the error handler (500, logged).
        const refusal = refusalOf(err);
        if (!refusal) return next(err);
        const malformed = refusal.reason === 'malformed_body';
        const refused =
          refusal.reason === 'body_too_large'
            ? ERRORS.registrationRefused('invalid_client_metadata', `registration body exceeds ${MAX_REGISTRATION_BODY} bytes`, refusal.reason, 413)
            : ERRORS.registrationRefused('invalid_client_metadata', malformed ? 'registration body is not valid JSON' : refusal.description, refusal.reason, refusal.status);
        audit.record({ event: 'registration.rejected', reason: malformed ? 'malformed_json' : refusal.reason }).then(() => next(refused), next);
      });
    },
    async (req: Request, _res: Response, next: NextFunction) => {
      const result = admitRegistration(req.body, policy);
      if (!result.ok) {
        await audit.record({
          event: 'registration.rejected',
          reason: `${result.error}:${result.reason}`,
          details: { error_description: result.description, client_name: typeof req.body?.client_name === 'string' ? req.body.client_name.slice(0, 200) : undefined },
        });
        return next(ERRORS.registrationRefused(result.error, result.description, result.reason));
      }
      req.body = result.metadata;
      next();
    },
  ];
}
