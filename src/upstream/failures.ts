/**
 * What went wrong in a call to U, as P reports it (UP-09): the failure reasons of the audit log,
 * and the mapping of openid-client's errors to them — by type and code, never by message text,
 * and without echoing U's free text. A network failure or a timeout is `unreachable` (the
 * gateway answers 504); U's own OAuth error keeps its (sanitised) code.
 */
import * as client from 'openid-client';

/** Why a callback or refresh failed, as audit reason codes. */
export type UpstreamFailure = 'upstream_error' | 'iss_mismatch' | 'exchange_failed' | 'identity_failed' | 'invalid_grant' | 'unreachable';

export class UpstreamError extends Error {
  constructor(
    readonly reason: UpstreamFailure,
    message: string,
    /** U's own error code, when it sent one (sanitised) */
    readonly upstreamCode?: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

const safeCode = (value: unknown) => (typeof value === 'string' ? value.replace(/[^\w.-]/g, '').slice(0, 64) : undefined);

/**
 * U's token endpoint codes that say the grant itself is gone (UP-08: P's grant ends with it):
 * RFC 6749 §5.2's `invalid_grant`, and GitHub's `bad_refresh_token` (a refresh token revoked with
 * the app's authorization, expired or already used; GitHub's refusals arrive as 200s,
 * src/upstream/github.ts `githubTokenRefusals`).
 */
const GRANT_GONE = new Set(['invalid_grant', 'bad_refresh_token']);

/** oauth4webapi's code for a refused response, which openid-client passes on (ClientError.code). */
const INVALID_RESPONSE = 'OAUTH_INVALID_RESPONSE';

/**
 * RFC 9207 / UP-05: is the authorization response's `iss` wrong — present and not U's issuer, or
 * absent while U says it sends one? oauth4webapi checks this before anything else in the
 * response, so when it refused the response and this holds, the refusal was about `iss`.
 */
function issuerProblem(callbackUrl: URL | undefined, metadata: client.ServerMetadata | undefined): boolean {
  if (!callbackUrl || !metadata) return false;
  const iss = callbackUrl.searchParams.get('iss');
  return iss === null ? metadata.authorization_response_iss_parameter_supported === true : iss !== metadata.issuer;
}

/** openid-client's code for a call to U that took longer than UPSTREAM_TIMEOUT (the abort is its `cause`). */
const TIMEOUT = 'OAUTH_TIMEOUT';

/**
 * A network failure or a timeout: U did not answer (undici's fetch error carries the system or
 * undici error code in `cause`; openid-client reports its own timeout as OAUTH_TIMEOUT).
 */
function isNetworkFailure(e: { name?: string; code?: unknown; cause?: { name?: string; code?: unknown } }): boolean {
  const aborted = (name: string | undefined) => name === 'TimeoutError' || name === 'AbortError';
  if (aborted(e.name) || aborted(e.cause?.name) || e.code === TIMEOUT) return true;
  return [e.code, e.cause?.code].some((code) => typeof code === 'string' && /^(E[A-Z]+|UND_ERR_\w+)$/.test(code));
}

/**
 * Map openid-client errors to our reasons by their type and code — never by their message text —
 * without echoing U's free text (UP-09).
 */
export function classify(err: unknown, during: 'exchange' | 'refresh', response?: { callbackUrl: URL; metadata: client.ServerMetadata }): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (err instanceof client.AuthorizationResponseError) {
    return new UpstreamError('upstream_error', 'the upstream refused the authorization', safeCode(err.error));
  }
  if (err instanceof client.ResponseBodyError) {
    const code = safeCode(err.error);
    const grantGone = code !== undefined && GRANT_GONE.has(code);
    return new UpstreamError(grantGone ? 'invalid_grant' : during === 'exchange' ? 'exchange_failed' : 'upstream_error', `the upstream token endpoint answered ${code}`, code);
  }
  const e = err as { code?: unknown; name?: string; message?: string; cause?: { code?: unknown; message?: string } };
  if (e.code === INVALID_RESPONSE && issuerProblem(response?.callbackUrl, response?.metadata)) {
    return new UpstreamError('iss_mismatch', 'the authorization response came from another issuer (RFC 9207)');
  }
  if (isNetworkFailure(e)) return new UpstreamError('unreachable', 'the upstream did not answer');
  // openid-client wraps oauth4webapi's precise message in `cause`: logged, never shown.
  const detail = `${e.message ?? ''} ${e.cause?.message ?? ''}`.trim();
  return new UpstreamError(during === 'exchange' ? 'exchange_failed' : 'upstream_error', detail || 'upstream request failed', typeof e.code === 'string' ? e.code : undefined);
}
