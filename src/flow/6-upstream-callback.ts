/**
 * Step 6 — U's redirect back to P (DESIGN §2 step 6), GET only (STATE-08).
 * Before anything else the browser-bound transaction is taken (src/session/upstream-login.ts):
 *   - STATE-04 (AT-03, AT-12): SHA-256 of the query's `state` must be in this browser's
 *     `__Host-` transaction cookie — a URL started in another browser is refused here;
 *   - STATE-05/06/07 (AT-13): the stored transaction is consumed atomically: unknown, replayed
 *     or expired states are refused, each with its own reason;
 *   only then is the transaction trusted. A refusal at this point is P's error page: no
 *   redirect, no code, the interaction untouched.
 * Then:
 *   - U's own `error=` response, a failed code exchange (PKCE, expected state and nonce,
 *     RFC 9207 `iss`: UP-05/06) or an unusable identity end the authorization with an error that
 *     P's page explains; its "Return to the application" link resumes the interaction so the
 *     client receives `access_denied` or `server_error` with its state and P's iss (UP-09). U's
 *     free text is never reflected.
 *   - success: a sign-in completes (src/session/sign-in.ts); an authorization is recorded in one
 *     transaction (src/consent/record.ts) and the browser is sent (303) to the resume URL, from
 *     where oidc-provider redirects to the client.
 */
import type { NextFunction, Request, Response, RequestHandler } from 'express';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { Audit } from '../audit/audit.js';
import { ERRORS } from '../errors/oauth-error.js';
import { UpstreamError, type UpstreamClient, type UpstreamExchange } from '../upstream/presets.js';
import { recordAuthorization, type RecordDeps } from '../consent/record.js';
import { saveInteractionResult } from '../provider/interaction-result.js';
import { completeSignIn, type SignInCompletionDeps } from '../session/sign-in.js';
import { takeUpstreamLogin, type TakeRefusal, type UpstreamLoginDeps } from '../session/upstream-login.js';
import type { AuthorizeTransaction, UpstreamTransaction } from '../store/upstream-transactions.js';

export interface CallbackDeps extends RecordDeps, SignInCompletionDeps, Pick<UpstreamLoginDeps, 'cookies'> {
  config: Readonly<Config>;
  provider: Provider;
  audit: Audit;
  log: Logger;
  upstream(): UpstreamClient;
  stores: RecordDeps['stores'] & SignInCompletionDeps['stores'] & UpstreamLoginDeps['stores'];
}

const REFUSAL_TEXT: Record<TakeRefusal, string> = {
  missing_state: 'The sign-in response is incomplete.',
  missing_cookie: 'This sign-in was not started in this browser, or the browser did not keep its cookie.',
  state_mismatch: 'This sign-in was not started in this browser.',
  unknown_state: 'This sign-in is not known here.',
  replayed: 'This sign-in response was already used.',
  expired: 'This sign-in took too long and has expired.',
};

/** Store an error as the interaction's result, so resuming sends it to the client (UP-09). */
async function failInteraction(provider: Provider, interactionUid: string, error: 'access_denied' | 'server_error', description: string): Promise<string | undefined> {
  const interaction = await provider.Interaction.find(interactionUid);
  return interaction && saveInteractionResult(interaction, { error, error_description: description });
}

const isSignIn = (tx: UpstreamTransaction) => tx.purpose === 'admin' || tx.purpose === 'account';

/** U said no, or the exchange failed: audit, end the interaction with an error, explain (UP-09). */
async function upstreamFailure(
  deps: CallbackDeps,
  req: Request,
  tx: UpstreamTransaction,
  failure: { reason: string; upstreamCode?: string | undefined },
  error: 'access_denied' | 'server_error',
  message: string,
) {
  const upstream = deps.upstream();
  const clientId = isSignIn(tx) ? undefined : (tx as AuthorizeTransaction).clientId;
  await deps.audit.record({ event: 'upstream.callback_failed', reason: failure.reason, clientId, details: { upstream_error: failure.upstreamCode, purpose: tx.purpose ?? 'authorize' } });
  const description = error === 'access_denied' ? `The sign-in at ${upstream.name} did not complete.` : `The sign-in at ${upstream.name} could not be completed.`;
  const returnTo = isSignIn(tx) ? undefined : await failInteraction(deps.provider, (tx as AuthorizeTransaction).interactionUid, error, description);
  return ERRORS.upstreamFailed(message, returnTo);
}

/** The code exchange at U (UP-05/06), or the error page that explains why it failed. */
async function exchange(deps: CallbackDeps, req: Request, tx: UpstreamTransaction, state: string): Promise<UpstreamExchange> {
  const upstream = deps.upstream();
  const currentUrl = new URL(deps.config.urls.upstreamCallback);
  currentUrl.search = new URLSearchParams(req.query as Record<string, string>).toString();
  try {
    return await upstream.exchange(currentUrl, { state, nonce: tx.nonce, codeVerifier: tx.codeVerifier });
  } catch (err) {
    const failure = err instanceof UpstreamError ? err : new UpstreamError('exchange_failed', (err as Error).message);
    deps.log.warn({ reason: failure.reason, message: failure.message, requestId: req.id }, 'upstream callback failed');
    const message =
      failure.reason === 'iss_mismatch'
        ? `The answer did not come from ${upstream.name} (issuer mismatch), so it was discarded. No access was granted.`
        : `The sign-in at ${upstream.name} could not be completed. No access was granted.`;
    throw await upstreamFailure(deps, req, tx, failure, 'server_error', message);
  }
}

/** A new authorization: record it, then on to the resume URL (303). */
async function completeAuthorization(deps: CallbackDeps, req: Request, res: Response, tx: AuthorizeTransaction, result: UpstreamExchange) {
  const { audit, config } = deps;
  const recorded = await recordAuthorization(deps, deps.cookies.read(req, 'session'), tx, result.identity, result.tokens);
  if (!recorded) throw ERRORS.invalidRequest('this sign-in has expired; start again from your application', 'interaction_expired');
  if ('refused' in recorded) {
    await audit.record({ event: 'consent.rejected', reason: recorded.refused, subject: result.identity.subject, clientId: tx.clientId, details: { redirect_uri: tx.redirectUri } });
    throw ERRORS.accessDenied('an administrator disabled or removed this application while you were signing in; nothing was granted to it', recorded.refused);
  }
  if (recorded.sessionId) deps.cookies.write(res, 'session', recorded.sessionId, config.ttl.session);
  const who = { subject: result.identity.subject, clientId: tx.clientId };
  await audit.record({ event: 'upstream.callback_succeeded', ...who, details: { upstream_scopes: result.tokens.scope ?? tx.upstreamScopes.join(' ') } });
  if (recorded.superseded) await audit.record({ event: 'consent.revoked', reason: 'superseded', ...who, details: { grant_id: recorded.superseded } });
  await audit.record({
    event: 'consent.recorded',
    ...who,
    details: {
      consent_id: recorded.consent.id,
      grant_id: recorded.grantId,
      scopes: recorded.consent.scopes,
      redirect_uri: tx.redirectUri,
      resource: tx.resource,
      expires_at: new Date(recorded.consent.expires_at).toISOString(),
    },
  });
  res.setHeader('Cache-Control', 'no-store');
  res.redirect(303, recorded.returnTo);
}

export function upstreamCallback(deps: CallbackDeps): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const state = typeof req.query.state === 'string' ? req.query.state : undefined;
      const taken = await takeUpstreamLogin(deps, req, res, state);
      if (!taken.ok) {
        await deps.audit.record({ event: 'upstream.callback_failed', reason: taken.reason, details: { sec_fetch_site: req.get('sec-fetch-site') } });
        throw ERRORS.callbackRefused(taken.reason, REFUSAL_TEXT[taken.reason]);
      }
      const tx = taken.transaction;
      if (typeof req.query.error === 'string') {
        const code = req.query.error.replace(/[^\w.-]/g, '').slice(0, 64);
        const name = deps.upstream().name;
        throw await upstreamFailure(
          deps,
          req,
          tx,
          { reason: 'upstream_error', upstreamCode: code },
          'access_denied',
          `${name} did not complete the sign-in (it answered “${code}”). No access was granted.`,
        );
      }
      const result = await exchange(deps, req, tx, state as string);
      if (isSignIn(tx)) return completeSignIn(deps, req, res, tx as Extract<UpstreamTransaction, { purpose: 'admin' | 'account' }>, result.identity);
      await completeAuthorization(deps, req, res, tx as AuthorizeTransaction, result);
    } catch (err) {
      next(err);
    }
  };
}
