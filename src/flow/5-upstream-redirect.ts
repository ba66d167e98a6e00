/**
 * Step 5 — the redirect to U, created only at the Approve POST (DESIGN §2 step 5, STATE-02): the
 * approved request — client, redirect URI, resource, scopes, the interaction and the approving
 * browser (CONS-02/16) — becomes a fresh, sealed, single-use upstream transaction bound to this
 * browser, and the browser goes to U with a 303 (STATE-01..07, CONS-18, AT-19). How the
 * transaction is made and bound is src/session/upstream-login.ts, the one module for it.
 */
import type { Request, Response } from 'express';
import type { ConsentRequest } from '../consent/decision.js';
import { startUpstreamLogin, type UpstreamLoginDeps } from '../session/upstream-login.js';

export type UpstreamRedirectDeps = UpstreamLoginDeps;

/** `browserHash`: the approving browser, recorded with the consent at the callback (CONS-02/16). */
export async function startUpstreamAuthorization(
  deps: UpstreamRedirectDeps,
  req: Request,
  res: Response,
  interactionUid: string,
  request: ConsentRequest,
  browserHash: string,
  shownAsKept: string[],
): Promise<void> {
  await startUpstreamLogin(deps, req, res, { interactionUid, ...request, browserHash, shownAsKept }, request.clientId);
}
