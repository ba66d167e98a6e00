/**
 * The browser-bound upstream login (DESIGN §2 steps 5–6) — the one module for the life of an
 * upstream `state`, whether it serves an authorization (after Approve) or P's own sign-in:
 * - STATE-01: `start` makes a fresh random `state` (256 bits), a `nonce` and P's own PKCE verifier
 *   for U (UP-02) per transaction;
 * - STATE-02/05/06/07: stored server-side only then (after approval or the sign-in click) — sealed,
 *   single-use, expiring after UPSTREAM_TRANSACTION_TTL; nothing client-controlled travels in
 *   `state`;
 * - STATE-03/04 (AT-03, AT-12): the `__Host-mcp-tx` cookie, set on the very response that sends
 *   the browser to U, holds SHA-256 of the state, binding the callback to this browser; it keeps
 *   the last MAX_BOUND_TRANSACTIONS hashes so two tabs can sign in at once;
 * - CONS-18 / AT-19: the answer is 303, never 307/308, so a form is not re-POSTed to U;
 * - `take`, at U's callback: the state's hash must be in this browser's cookie, then the stored
 *   transaction is consumed atomically — unknown, replayed or expired states are refused, each
 *   with its own reason — and the hash leaves the cookie.
 * The upstream authorization URL exists nowhere before `start`.
 */
import type { Request, Response } from 'express';
import { randomToken, sha256 } from '../crypto/keys.js';
import { ERRORS } from '../errors/oauth-error.js';
import type { Audit } from '../audit/audit.js';
import type { CookieJar } from '../http/cookies.js';
import type { Stores } from '../store/index.js';
import type { AuthorizeTransaction, SignInTransaction, UpstreamTransaction } from '../store/upstream-transactions.js';
import type { UpstreamClient } from '../upstream/presets.js';

/** STATE-06: the upstream login must complete within ten minutes (the SBP example). */
export const UPSTREAM_TRANSACTION_TTL = 600;
/** Concurrent sign-ins one browser may have in flight. */
export const MAX_BOUND_TRANSACTIONS = 5;

export interface UpstreamLoginDeps {
  cookies: CookieJar;
  stores: Pick<Stores, 'transactions'>;
  audit: Audit;
  upstream(): UpstreamClient;
}

/** What a transaction is for, before P adds its own secrets. */
export type LoginPurpose = Omit<AuthorizeTransaction, 'nonce' | 'codeVerifier' | 'upstreamScopes'> | Omit<SignInTransaction, 'nonce' | 'codeVerifier' | 'upstreamScopes'>;

export type TakeRefusal = 'missing_state' | 'missing_cookie' | 'state_mismatch' | 'unknown_state' | 'replayed' | 'expired';

function boundStateHashes(cookies: CookieJar, req: Request): string[] {
  return (cookies.read(req, 'tx') ?? '').split('~').filter(Boolean);
}

/** Create the transaction, bind it to this browser and send the browser to U (303). */
export async function startUpstreamLogin(deps: UpstreamLoginDeps, req: Request, res: Response, purpose: LoginPurpose, clientId: string | undefined): Promise<void> {
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
  await deps.stores.transactions.create(state, { ...purpose, upstreamScopes: [...upstream.scopes], nonce, codeVerifier } as UpstreamTransaction, UPSTREAM_TRANSACTION_TTL);
  const bound = [...boundStateHashes(deps.cookies, req), sha256(state)].slice(-MAX_BOUND_TRANSACTIONS);
  deps.cookies.write(res, 'tx', bound.join('~'), UPSTREAM_TRANSACTION_TTL);
  await deps.audit.record({ event: 'upstream.redirected', clientId, details: { upstream: url.host, upstream_scopes: upstream.scopes.join(' '), purpose: purpose.purpose ?? 'authorize' } });
  res.setHeader('Cache-Control', 'no-store');
  res.redirect(303, url.href);
}

/** At the callback: this browser's transaction for `state`, consumed; or why it is refused. */
export async function takeUpstreamLogin(
  deps: Pick<UpstreamLoginDeps, 'cookies' | 'stores'>,
  req: Request,
  res: Response,
  state: string | undefined,
): Promise<{ ok: true; transaction: UpstreamTransaction } | { ok: false; reason: TakeRefusal }> {
  if (!state) return { ok: false, reason: 'missing_state' };
  const bound = boundStateHashes(deps.cookies, req);
  const stateHash = sha256(state);
  if (!bound.includes(stateHash)) return { ok: false, reason: bound.length ? 'state_mismatch' : 'missing_cookie' };
  const consumed = await deps.stores.transactions.consume(state);
  if (!consumed.ok) return consumed;
  const remaining = bound.filter((h) => h !== stateHash);
  if (remaining.length) deps.cookies.write(res, 'tx', remaining.join('~'), UPSTREAM_TRANSACTION_TTL);
  else deps.cookies.clear(res, 'tx');
  return { ok: true, transaction: consumed.transaction };
}
