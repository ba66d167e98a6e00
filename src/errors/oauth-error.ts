/**
 * One error model (style C3): an OAuth error code for the wire, an HTTP status, a wire-safe
 * description, and a private reason for logs and the audit log. Anything that is not an
 * OAuthError becomes `server_error` with a fixed message (src/errors/render.ts).
 */
export class OAuthError extends Error {
  constructor(
    /** RFC error code (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2) */
    readonly code: string,
    /** wire-safe description */
    readonly description: string,
    readonly status = 400,
    /** internal reason code (audit `reason`, logs); never sent */
    readonly reason: string = code,
    /** extra response headers */
    readonly headers: Record<string, string> = {},
  ) {
    super(`${code}: ${description}`);
    this.name = 'OAuthError';
  }
}

/** Named factories: call sites never spell codes or statuses themselves. */
export const ERRORS = {
  invalidRequest: (description: string, reason?: string) => new OAuthError('invalid_request', description, 400, reason),
  invalidClientMetadata: (description: string, reason?: string) => new OAuthError('invalid_client_metadata', description, 400, reason),
  invalidRedirectUri: (description: string, reason?: string) => new OAuthError('invalid_redirect_uri', description, 400, reason),
  bodyTooLarge: (limit: number) => new OAuthError('invalid_request', `request body exceeds ${limit} bytes`, 413, 'body_too_large'),
  accessDenied: (description: string, reason?: string) => new OAuthError('access_denied', description, 403, reason),
  notFound: () => new OAuthError('not_found', 'The requested page does not exist.', 404, 'not_found'),
  methodNotAllowed: (allow: string) => new OAuthError('invalid_request', `method not allowed; use ${allow}`, 405, 'method_not_allowed', { Allow: allow }),
  tooManyRequests: (retryAfterSeconds: number) =>
    new OAuthError('too_many_requests', 'Too many requests from this address; try again later.', 429, 'rate_limited', {
      'Retry-After': String(retryAfterSeconds),
    }),
  serverError: () => new OAuthError('server_error', 'An unexpected error occurred.', 500, 'unexpected'),
  temporarilyUnavailable: (description: string, reason?: string) => new OAuthError('temporarily_unavailable', description, 503, reason),
};
