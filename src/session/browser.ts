/**
 * This browser, as P knows it — the one module for both questions:
 * - `currentSession`: P's own browser session (CONS-04), opened after an upstream login: the
 *   signed `__Host-mcp-session` cookie names it, the store holds only its SHA-256 and expiry.
 * - the browser id (CONS-02/CONS-16): a random 256-bit value in a signed, HttpOnly, SameSite=Lax
 *   `__Host-mcp-browser` cookie (CONS-10/11/12), created or renewed at the consent page's Approve
 *   and recorded (as SHA-256) with the consent, so a remembered consent applies only in the
 *   browser that approved it (src/consent/decision.ts).
 */
import type { Request, Response } from 'express';
import { randomToken, sha256 } from '../crypto/keys.js';
import type { CookieJar } from '../http/cookies.js';
import type { BrowserSession } from '../store/browser-sessions.js';
import type { Stores } from '../store/index.js';

/** A browser id cookie lives as long as browsers allow (400 days) and is renewed at every Approve. */
export const BROWSER_ID_MAX_AGE = 400 * 86_400;

export interface BrowserDeps {
  cookies: CookieJar;
  stores: Pick<Stores, 'browserSessions'>;
}

/** P's browser session this request carries, with its raw id (for renewing or closing it). */
export async function currentSession(deps: BrowserDeps, req: Request, now?: number): Promise<{ id: string; session: BrowserSession } | undefined> {
  const id = deps.cookies.read(req, 'session');
  const session = id ? await deps.stores.browserSessions.find(id, now) : undefined;
  return id && session ? { id, session } : undefined;
}

/** SHA-256 of the browser id this request carries (signed cookie), or undefined. */
export function browserHashOf(cookies: CookieJar, req: Request): string | undefined {
  const id = cookies.read(req, 'browser');
  return id ? sha256(id) : undefined;
}

/** At Approve: this browser's id (created once, renewed), as the hash the consent will record. */
export function bindBrowser(cookies: CookieJar, req: Request, res: Response): string {
  const id = cookies.read(req, 'browser') ?? randomToken();
  cookies.write(res, 'browser', id, BROWSER_ID_MAX_AGE);
  return sha256(id);
}
