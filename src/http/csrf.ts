/**
 * CSRF protection for every form P serves — the one module that issues and checks the tokens
 * (CONS-08, AT-04 consent CSRF, AT-12 login CSRF). A token is HMAC-SHA-256 under the `csrf` key
 * derived from SECRET_KEY (src/crypto/keys.ts; SECRET_KEY_PREVIOUS still verifies) over a
 * purpose label and what the form is bound to:
 * - browser-bound forms (the consent decision, the sign-in button): double-submit — the value
 *   includes a random per-browser secret kept in the `__Host-mcp-csrf` cookie (signed, HttpOnly,
 *   SameSite=Lax, so a cross-site POST does not carry it), created once and reused, so a reload or
 *   a second tab keeps a valid token (checklist §5.10); plus the form's context (the interaction);
 * - session-bound forms (admin, /account): the value includes the session id.
 * A token for one purpose, browser, session or interaction is worthless for any other.
 */
import type { Request, Response } from 'express';
import { randomToken, type KeyRing } from '../crypto/keys.js';
import type { CookieJar } from './cookies.js';

/** How long the browser secret cookie lives; a consent or sign-in page is filled in well within. */
const BROWSER_SECRET_MAX_AGE = 24 * 3600;

export type CsrfCheck = 'ok' | 'cookie_missing' | 'mismatch';

export function createCsrf(keys: KeyRing, cookies: CookieJar) {
  const browserValue = (purpose: string, secret: string, context: string) => `${purpose}:${secret}:${context}`;
  const sessionValue = (purpose: string, sessionId: string) => `${purpose}:${sessionId}`;
  return {
    /** A token for a browser-bound form; sets the browser secret cookie when the browser has none. */
    forBrowser(req: Request, res: Response, purpose: string, context = ''): string {
      let secret = cookies.read(req, 'csrf');
      if (!secret) {
        secret = randomToken();
        cookies.write(res, 'csrf', secret, BROWSER_SECRET_MAX_AGE);
      }
      return keys.csrfMac(browserValue(purpose, secret, context));
    },
    /** Whether a browser-bound form's token is this browser's, for this purpose and context. */
    checkBrowser(req: Request, purpose: string, context: string, token: unknown): CsrfCheck {
      const secret = cookies.read(req, 'csrf');
      if (!secret) return 'cookie_missing';
      return typeof token === 'string' && token !== '' && keys.checkCsrfMac(browserValue(purpose, secret, context), token) ? 'ok' : 'mismatch';
    },
    /** A token for a form bound to a session (admin, account). */
    forSession(purpose: string, sessionId: string): string {
      return keys.csrfMac(sessionValue(purpose, sessionId));
    },
    checkSession(purpose: string, sessionId: string, token: unknown): boolean {
      return typeof token === 'string' && token !== '' && keys.checkCsrfMac(sessionValue(purpose, sessionId), token);
    },
  };
}

export type Csrf = ReturnType<typeof createCsrf>;
