/**
 * Step 5 — U's redirect back to P (DESIGN §2 step 6), GET only (STATE-08).
 * Before anything else:
 *   - STATE-04 (AT-03, AT-12): SHA-256 of the query's `state` must be in this browser's
 *     `__Host-` transaction cookie — a URL started in another browser is refused here;
 *   - STATE-05/06/07 (AT-13): the stored transaction is consumed atomically: unknown, replayed
 *     or expired states are refused, each with its own reason;
 *   only then is the transaction trusted. A refusal at this point renders P's error page: no
 *   redirect, no code, the interaction untouched.
 * Then:
 *   - U's own `error=` response, a failed code exchange (PKCE, expected state and nonce,
 *     RFC 9207 `iss`: UP-05/06) or an unusable identity end the authorization with an error that
 *     P's page explains; its "Return to the application" link resumes the interaction so the
 *     client receives `access_denied` or `server_error` with its state and P's iss (UP-09). U's
 *     free text is never reflected.
 *   - success: step 6 records consent, grant, tokens and session in one transaction, and the
 *     browser is sent (303) to the resume URL, from where oidc-provider redirects to the client.
 */
import type { NextFunction, Request, Response, RequestHandler } from 'express';
import { sha256 } from '../crypto/keys.js';
import { ERRORS } from '../errors/oauth-error.js';
import { errorPageHtml } from '../errors/render.js';
import { UpstreamError } from '../upstream/presets.js';
import type { FlowDeps } from './deps.js';
import { boundStateHashes, UPSTREAM_TRANSACTION_TTL } from './5-upstream-redirect.js';
import { completeNewAuthorization, failInteraction } from '../consent/record.js';
import { completeSignIn } from '../session/sign-in.js';
import type { AuthorizeTransaction } from '../store/upstream-transactions.js';

type Refusal = 'missing_state' | 'missing_cookie' | 'state_mismatch' | 'unknown_state' | 'replayed' | 'expired';

const REFUSAL_TEXT: Record<Refusal, string> = {
  missing_state: 'The sign-in response is incomplete.',
  missing_cookie: 'This sign-in was not started in this browser, or the browser did not keep its cookie.',
  state_mismatch: 'This sign-in was not started in this browser.',
  unknown_state: 'This sign-in is not known here.',
  replayed: 'This sign-in response was already used.',
  expired: 'This sign-in took too long and has expired.',
};

export function upstreamCallback(deps: FlowDeps): RequestHandler {
  const { audit, config, views, stores } = deps;

  function refuse(req: Request, res: Response, reason: Refusal) {
    audit.record({ event: 'upstream.callback_failed', reason, details: { sec_fetch_site: req.get('sec-fetch-site') } });
    res.status(400).setHeader('Cache-Control', 'no-store');
    res.type('html').send(
      errorPageHtml(views, { status: 400, code: 'invalid_request', title: 'This sign-in cannot be completed', message: `${REFUSAL_TEXT[reason]} Nothing was shared with any application. Start again from your application.` }, req.id),
    );
  }

  function showFailure(req: Request, res: Response, returnTo: string | undefined, message: string) {
    res.status(502).setHeader('Cache-Control', 'no-store');
    res.type('html').send(
      views.render('upstream-error', { title: 'Sign-in failed', message, returnTo }, req.id),
    );
  }

  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const state = typeof req.query.state === 'string' ? req.query.state : undefined;
      if (!state) return refuse(req, res, 'missing_state');
      const bound = boundStateHashes(deps, req);
      const stateHash = sha256(state);
      if (!bound.includes(stateHash)) return refuse(req, res, bound.length ? 'state_mismatch' : 'missing_cookie');
      const consumed = stores.transactions.consume(state);
      if (!consumed.ok) return refuse(req, res, consumed.reason);
      const remaining = bound.filter((h) => h !== stateHash);
      if (remaining.length) deps.cookies.write(res, 'tx', remaining.join('~'), UPSTREAM_TRANSACTION_TTL);
      else deps.cookies.clear(res, 'tx');
      const tx = consumed.transaction;
      const upstream = deps.upstream();
      const signIn = tx.purpose === 'admin' || tx.purpose === 'account' ? tx : undefined;
      const clientId = signIn ? undefined : (tx as AuthorizeTransaction).clientId;
      const fail = (error: 'access_denied' | 'server_error', description: string) =>
        signIn ? Promise.resolve(undefined) : failInteraction(deps, (tx as AuthorizeTransaction).interactionUid, error, description);

      if (typeof req.query.error === 'string') {
        const code = req.query.error.replace(/[^\w.-]/g, '').slice(0, 64);
        audit.record({ event: 'upstream.callback_failed', reason: 'upstream_error', clientId, details: { upstream_error: code, purpose: tx.purpose ?? 'authorize' } });
        const returnTo = await fail('access_denied', `The sign-in at ${upstream.name} did not complete.`);
        return showFailure(req, res, returnTo, `${upstream.name} did not complete the sign-in (it answered “${code}”). No access was granted.`);
      }

      const currentUrl = new URL(config.urls.upstreamCallback);
      currentUrl.search = new URLSearchParams(req.query as Record<string, string>).toString();
      let result;
      try {
        result = await upstream.exchange(currentUrl, { state, nonce: tx.nonce, codeVerifier: tx.codeVerifier });
      } catch (err) {
        const failure = err instanceof UpstreamError ? err : new UpstreamError('exchange_failed', (err as Error).message);
        deps.log.warn({ reason: failure.reason, message: failure.message, requestId: req.id }, 'upstream callback failed');
        audit.record({ event: 'upstream.callback_failed', reason: failure.reason, clientId, details: { upstream_error: failure.upstreamCode, purpose: tx.purpose ?? 'authorize' } });
        const returnTo = await fail('server_error', `The sign-in at ${upstream.name} could not be completed.`);
        const message =
          failure.reason === 'iss_mismatch'
            ? `The answer did not come from ${upstream.name} (issuer mismatch), so it was discarded. No access was granted.`
            : `The sign-in at ${upstream.name} could not be completed. No access was granted.`;
        return showFailure(req, res, returnTo, message);
      }

      if (signIn) return completeSignIn(deps, req, res, signIn, result.identity);
      const authorization = tx as AuthorizeTransaction;
      const completed = await completeNewAuthorization(deps, deps.cookies.read(req, 'session'), authorization, result.identity, result.tokens);
      if (!completed) throw ERRORS.invalidRequest('this sign-in has expired; start again from your application', 'interaction_expired');
      if (completed.sessionId) deps.cookies.write(res, 'session', completed.sessionId, config.ttl.session);
      const who = { subject: result.identity.subject, clientId: authorization.clientId };
      audit.record({ event: 'upstream.callback_succeeded', ...who, details: { upstream_scopes: result.tokens.scope ?? authorization.upstreamScopes.join(' ') } });
      if (completed.superseded) audit.record({ event: 'consent.revoked', reason: 'superseded', ...who, details: { grant_id: completed.superseded } });
      audit.record({
        event: 'consent.recorded',
        ...who,
        details: { consent_id: completed.consent.id, grant_id: completed.grantId, scopes: completed.consent.scopes, redirect_uri: authorization.redirectUri, resource: authorization.resource, expires_at: new Date(completed.consent.expires_at).toISOString() },
      });
      res.setHeader('Cache-Control', 'no-store');
      res.redirect(303, completed.returnTo);
    } catch (err) {
      next(err);
    }
  };
}
