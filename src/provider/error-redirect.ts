/**
 * What an error response sent to a client's redirect URI may carry (AUTHZ-12, AT-09, RFC 6749
 * §4.1.2.1, RFC 9207 §2). The one module for it: every authorization response oidc-provider
 * renders — the error handler of /authorize and of its resume after P's interaction, in every
 * response mode (query, fragment, form_post) — passes through the response-mode handlers, and
 * this provider class wraps each of them as it is registered (`registerResponseMode`, oidc-provider's
 * public API, called by its constructor for every mode).
 *
 * An error payload leaves with exactly:
 * - `error`: one of the codes below (anything else becomes `server_error`);
 * - `error_description`: our own fixed wording for that code — never the provider's text, the
 *   policy's (src/provider/policy.ts names the unknown scope), an interaction result's, or anything
 *   taken from the request. One code has two wordings: `invalid_scope` for a scope P does not offer
 *   (P's policy) and for an offered scope outside the client's registered `scope` (oidc-provider's
 *   own check, which it describes exactly as PROVIDER_SCOPE_NOT_ALLOWED); the provider's text only
 *   chooses between the two;
 * - `state`: the client's own value, unchanged (AUTHZ-08);
 * - `iss`: P's issuer (AUTHZ-09).
 * Nothing else: no `scope`, no `error_uri`. The full error stays in the `authorization.rejected`
 * audit row (src/provider/events.ts). Success payloads (`code`, `state`, `iss`) are untouched.
 */
import Provider from 'oidc-provider';

/** Our wording, per error code; the only descriptions a client's redirect URI ever receives. */
export const CLIENT_ERROR_DESCRIPTIONS: Readonly<Record<string, string>> = Object.freeze({
  // RFC 6749 §4.1.2.1
  invalid_request: 'The authorization request is invalid: a required parameter is missing, repeated or malformed (PKCE with S256 is required).',
  unauthorized_client: 'This client may not use this kind of authorization request.',
  access_denied: 'Access was denied: the user declined, or the sign-in did not complete.',
  unsupported_response_type: 'Only response_type=code is supported.',
  invalid_scope: 'A requested scope is not offered by this server.',
  server_error: 'The authorization server could not complete the request.',
  temporarily_unavailable: 'The authorization server cannot complete the request right now; try again later.',
  // RFC 8707 §2
  invalid_target: 'The requested resource is not one this server protects.',
  // OpenID Connect Core §3.1.2.6 (prompt=none, AUTHZ-13)
  login_required: 'The user must sign in and approve this client at this server.',
  consent_required: 'The user must sign in and approve this client at this server.',
  interaction_required: 'The user must sign in and approve this client at this server.',
  account_selection_required: 'The user must sign in and approve this client at this server.',
  invalid_request_uri: 'This server does not support request_uri.',
  invalid_request_object: 'This server does not support request objects.',
  request_not_supported: 'This server does not support request objects.',
  request_uri_not_supported: 'This server does not support request_uri.',
  registration_not_supported: 'This server does not support the registration parameter.',
});

/** oidc-provider's description of an offered scope the client's registered `scope` does not include (its checkScope, validateClientScope). */
const PROVIDER_SCOPE_NOT_ALLOWED = 'requested scope is not allowed';

/** Our wording for that `invalid_scope`: the scope is offered, the client's registration does not allow it. */
export const SCOPE_NOT_ALLOWED_FOR_CLIENT = "A requested scope is offered by this server, but this client's registration does not allow it.";

/** The error payload a client receives: error, our description, its state, our issuer. */
export function clientErrorPayload(payload: Readonly<Record<string, unknown>>, issuer: string): Record<string, string> {
  const code = typeof payload.error === 'string' && Object.hasOwn(CLIENT_ERROR_DESCRIPTIONS, payload.error) ? payload.error : 'server_error';
  const notAllowed = code === 'invalid_scope' && payload.error_description === PROVIDER_SCOPE_NOT_ALLOWED;
  const out: Record<string, string> = { error: code, error_description: notAllowed ? SCOPE_NOT_ALLOWED_FOR_CLIENT : (CLIENT_ERROR_DESCRIPTIONS[code] as string) };
  if (typeof payload.state === 'string') out.state = payload.state;
  out.iss = issuer;
  return out;
}

type ResponseModeHandler = Parameters<Provider['registerResponseMode']>[1];

/** oidc-provider whose response modes send error payloads only through `clientErrorPayload`. */
export class ProviderWithSafeErrorRedirects extends Provider {
  override registerResponseMode(name: string, handler: ResponseModeHandler): void {
    super.registerResponseMode(name, function guarded(this: Provider, ctx, redirectUri, payload) {
      const safe = payload && typeof payload === 'object' && 'error' in payload ? clientErrorPayload(payload, this.issuer) : payload;
      return handler.call(this, ctx, redirectUri, safe);
    });
  }
}
