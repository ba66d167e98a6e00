/**
 * One error model (style C3): an OAuth error code for the wire, an HTTP status, a wire-safe
 * description, and a private reason for logs and the audit log.
 *
 * `refusalOf` is the one place that decides which thrown errors are the client's fault
 * (DESIGN §9 "Hostile input": no request, however malformed, yields a 5xx). Errors from the
 * libraries under us that say the input was bad — oidc-provider's exposed errors (an unknown or
 * expired interaction: SessionNotFound), body-parser's typed errors (too large, too many
 * parameters, unparsable, unsupported encoding or charset), the router's and the static-file
 * server's 4xx (undecodable path parameters, `..` paths, missing files), a URIError from
 * percent-decoding — become a 4xx OAuthError with our own fixed wording (never the library's
 * message, which may echo the input or name internals). Anything else is a bug: it stays a
 * `server_error` 500 and is logged with its stack (src/errors/render.ts).
 */
import { errors as oidcErrors } from 'oidc-provider';

/** What a browser sees instead of the generic page for the error code (src/errors/render.ts). */
export interface ErrorPage {
  title: string;
  message: string;
  /** the sign-in-not-completed page (views/upstream-error.eta) rather than the generic one */
  upstream?: boolean;
  /** "Return to the application": resumes the interaction so the client gets the error (UP-09) */
  returnTo?: string | undefined;
}

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
    /** for browsers: the error page's own title and text, and a link back to the application */
    readonly page?: ErrorPage,
  ) {
    super(`${code}: ${description}`);
    this.name = 'OAuthError';
  }
}

/** Named factories: call sites never spell codes or statuses themselves. */
export const ERRORS = {
  invalidRequest: (description: string, reason?: string) => new OAuthError('invalid_request', description, 400, reason),
  bodyTooLarge: (limit: number) => new OAuthError('invalid_request', `request body exceeds ${limit} bytes`, 413, 'body_too_large'),
  accessDenied: (description: string, reason?: string) => new OAuthError('access_denied', description, 403, reason),
  notFound: () => new OAuthError('not_found', 'The requested page does not exist.', 404, 'not_found'),
  methodNotAllowed: (allow: string) => new OAuthError('invalid_request', `method not allowed; use ${allow}`, 405, 'method_not_allowed', { Allow: allow }),
  tooManyRequests: (retryAfterSeconds: number) =>
    new OAuthError('too_many_requests', 'Too many requests from this address; try again later.', 429, 'rate_limited', {
      'Retry-After': String(retryAfterSeconds),
    }),
  serverError: () => new OAuthError('server_error', 'An unexpected error occurred.', 500, 'unexpected'),
  /** an unknown, expired or finished interaction or sign-in (its page: src/errors/render.ts) */
  signInExpired: () => new OAuthError('invalid_request', 'This sign-in has expired, start again from your application.', 400, 'session_not_found'),
  /** RFC 6750 §3.1: a missing or wrong bearer token (the operations endpoints) */
  invalidToken: (description: string) => new OAuthError('invalid_token', description, 401, 'invalid_token', { 'WWW-Authenticate': 'Bearer' }),
  /** RFC 8707 §2: a resource this authorization does not cover */
  invalidTarget: (description: string) => new OAuthError('invalid_target', description, 400, 'invalid_target'),
  /** a registration the admission policy refuses (RFC 7591 §3.2.2) */
  registrationRefused: (error: 'invalid_redirect_uri' | 'invalid_client_metadata', description: string, reason: string, status = 400) => new OAuthError(error, description, status, reason),
  /** U's callback refused before anything is trusted (STATE-04..07): P's page, no redirect */
  callbackRefused: (reason: string, text: string) =>
    new OAuthError(
      'invalid_request',
      text,
      400,
      reason,
      {},
      { title: 'This sign-in cannot be completed', message: `${text} Nothing was shared with any application. Start again from your application.` },
    ),
  /** the login at U failed (its error, a failed exchange): P's page with the way back (UP-09) */
  upstreamFailed: (message: string, returnTo: string | undefined) =>
    new OAuthError('access_denied', message, 502, 'upstream_failed', {}, { title: 'Sign-in failed', message, returnTo, upstream: true }),
  /**
   * A CIMD client_id P refused (issue 12, DESIGN §10): P's page at /authorize, never a redirect
   * (nothing the document said is trusted), in P's fixed wording; `reason` is the refusal code.
   */
  cimdRefusedPage: (reason: string) =>
    new OAuthError(
      'invalid_client',
      'The application identifies itself by a web address whose client metadata could not be used.',
      400,
      `cimd_${reason}`,
      {},
      {
        title: 'This application cannot be identified',
        message:
          'The application identifies itself by a web address, but the client metadata published there could not be used, so this sign-in cannot continue. Nothing was shared with any application.',
      },
    ),
  /** a bound on the CIMD fetches at once was reached (src/cimd/resolve.ts: in all, per client address, per host name, per address dialled): P is busy, not the client's document at fault */
  cimdBusy: () => new OAuthError('temporarily_unavailable', 'The service is busy; try again in a moment.', 503, 'cimd_busy', { 'Retry-After': '1' }),
  /** the same at /token and /revoke (JSON, RFC 6749 §5.2 invalid_client) */
  cimdRefused: (reason: string) => new OAuthError('invalid_client', 'the client metadata document at the client_id could not be used', 400, `cimd_${reason}`),
  /** a signed-in user who may not use this page (admin) */
  forbiddenPage: (title: string, message: string, reason: string) => new OAuthError('access_denied', message, 403, reason, {}, { title, message }),
  temporarilyUnavailable: (description: string, reason?: string) => new OAuthError('temporarily_unavailable', description, 503, reason),
  /** the database stayed locked for its whole busy timeout, or PostgreSQL was unreachable (src/errors/database-unavailable.ts) */
  databaseBusy: () => new OAuthError('temporarily_unavailable', 'The service is busy; try again in a moment.', 503, 'database_busy', { 'Retry-After': '1' }),
};

/** body-parser's error types (body-parser 2 `err.type`) that a client's request causes. */
const BODY_ERRORS: Record<string, (err: { limit?: number }) => OAuthError> = {
  'entity.too.large': (err) => ERRORS.bodyTooLarge(err.limit ?? 0),
  'parameters.too.many': () => new OAuthError('invalid_request', 'The request body has too many parameters.', 413, 'too_many_parameters'),
  'entity.parse.failed': () => new OAuthError('invalid_request', 'The request body could not be parsed.', 400, 'malformed_body'),
  'querystring.parse.rangeError': () => new OAuthError('invalid_request', 'The request body could not be parsed.', 400, 'malformed_body'),
  'entity.verify.failed': () => new OAuthError('invalid_request', 'The request body was refused.', 403, 'body_refused'),
  'encoding.unsupported': () => new OAuthError('invalid_request', 'The request body uses an unsupported content encoding.', 415, 'unsupported_encoding'),
  'charset.unsupported': () => new OAuthError('invalid_request', 'The request body uses an unsupported charset.', 415, 'unsupported_charset'),
  'request.aborted': () => new OAuthError('invalid_request', 'The request body was not received completely.', 400, 'request_aborted'),
  'request.size.invalid': () => new OAuthError('invalid_request', 'The request body does not match its Content-Length.', 400, 'body_size_mismatch'),
};

/** Wording for other 4xx errors of http-errors shape (router, static files, decompression). */
function byStatus(status: number): OAuthError {
  if (status === 404 || status === 410) return ERRORS.notFound();
  if (status === 403) return new OAuthError('access_denied', 'The request was refused.', 403, 'forbidden');
  if (status === 413) return new OAuthError('invalid_request', 'The request body is too large.', 413, 'body_too_large');
  if (status === 415) return new OAuthError('invalid_request', 'The request body has an unsupported type or encoding.', 415, 'unsupported_media_type');
  return new OAuthError('invalid_request', 'The request is malformed.', status, `http_${status}`);
}

type Thrown = { type?: unknown; status?: unknown; statusCode?: unknown; limit?: number };

/**
 * The 4xx answer for an error the client's input caused, or undefined for anything else (a bug:
 * 500, logged). See the module comment.
 */
export function refusalOf(err: unknown): OAuthError | undefined {
  if (err instanceof OAuthError) return err;
  if (!err || typeof err !== 'object') return undefined;
  const e = err as Thrown;
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const clientStatus = status !== undefined && status >= 400 && status < 500 ? status : undefined;
  if (err instanceof oidcErrors.OIDCProviderError) {
    if (!clientStatus || !err.expose) return undefined;
    // An unknown, expired or already finished interaction: the user reloaded the consent page
    // after ten minutes, or submitted it twice.
    if (err.name === 'SessionNotFound') return ERRORS.signInExpired();
    return new OAuthError(err.error, err.error_description ?? 'The request is not valid.', clientStatus, err.error);
  }
  if (typeof e.type === 'string' && Object.hasOwn(BODY_ERRORS, e.type)) return (BODY_ERRORS[e.type] as (x: Thrown) => OAuthError)(e);
  // http-errors' `expose` says whether the message may be shown (never, here), not whose fault
  // it is: the static-file server marks its 404 for a missing file `expose: false`.
  if (clientStatus) return byStatus(clientStatus);
  if (err instanceof URIError) return new OAuthError('invalid_request', 'The request contains malformed percent-encoding.', 400, 'malformed_encoding');
  return undefined;
}
