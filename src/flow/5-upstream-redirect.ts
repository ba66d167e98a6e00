/**
 * Step 4 — the redirect to U, created only at the Approve POST (DESIGN §2 step 5):
 * - STATE-01: a fresh random `state` (256 bits), a `nonce` and P's own PKCE verifier for U
 *   (UP-02) per transaction;
 * - STATE-02/05/06/07: stored server-side only now, after approval — sealed, single-use,
 *   expiring after UPSTREAM_TRANSACTION_TTL; nothing client-controlled travels in `state`;
 * - STATE-03/04: the `__Host-` transaction cookie, set on this very response, holds SHA-256 of
 *   the state, binding the callback to this browser (AT-03, AT-12). It keeps the last few hashes
 *   so two tabs can sign in at once;
 * - CONS-18 / AT-19: the answer is 303, never 307/308, so the form is not re-POSTed to U.
 * The upstream authorization URL exists nowhere before this point.
 */
import type { Request, Response } from 'express';
import { randomToken, sha256 } from '../crypto/keys.js';
import { ERRORS } from '../errors/oauth-error.js';
import type { FlowDeps } from './deps.js';
import type { ConsentRequest } from './4-consent.js';
import type { AuthorizeTransaction, SignInTransaction, UpstreamTransaction } from '../store/upstream-transactions.js';

/** STATE-06: the upstream login must complete within ten minutes (the SBP example). */
export const UPSTREAM_TRANSACTION_TTL = 600;
/** Concurrent sign-ins one browser may have in flight. */
export const MAX_BOUND_TRANSACTIONS = 5;

export function boundStateHashes(deps: FlowDeps, req: Request): string[] {
  return (deps.cookies.read(req, 'tx') ?? '').split('~').filter(Boolean);
}

/** `browserHash`: the approving browser, recorded with the consent at the callback (CONS-02/16). */
export async function startUpstreamAuthorization(deps: FlowDeps, req: Request, res: Response, interactionUid: string, request: ConsentRequest, browserHash: string): Promise<void> {
  await redirectToUpstream(deps, req, res, { interactionUid, ...request, browserHash }, request.clientId);
}

/** Create the transaction, bind it to this browser and send the browser to U (303). */
export async function redirectToUpstream(
  deps: FlowDeps,
  req: Request,
  res: Response,
  purpose: Omit<AuthorizeTransaction, 'nonce' | 'codeVerifier' | 'upstreamScopes'> | Omit<SignInTransaction, 'nonce' | 'codeVerifier' | 'upstreamScopes'>,
  clientId: string | undefined,
): Promise<void> {
  const upstream = deps.upstream();
  const state = randomToken();
  const nonce = randomToken();
  const codeVerifier = randomToken();
  let url: URL;
  try {
    url = await upstream.authorizationUrl({ state, nonce, codeVerifier });
  } catch {
    throw ERRORS.temporarilyUnavailable(`${upstream.name} cannot be reached right now; try again in a moment`, 'upstream_unreachable');
  }
  deps.stores.transactions.create(state, { ...purpose, upstreamScopes: [...upstream.scopes], nonce, codeVerifier } as UpstreamTransaction, UPSTREAM_TRANSACTION_TTL);
  const bound = [...boundStateHashes(deps, req), sha256(state)].slice(-MAX_BOUND_TRANSACTIONS);
  deps.cookies.write(res, 'tx', bound.join('~'), UPSTREAM_TRANSACTION_TTL);
  deps.audit.record({ event: 'upstream.redirected', clientId, details: { upstream: url.host, upstream_scopes: upstream.scopes.join(' '), purpose: purpose.purpose ?? 'authorize' } });
  res.setHeader('Cache-Control', 'no-store');
  res.redirect(303, url.href);
}
