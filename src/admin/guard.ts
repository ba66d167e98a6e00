/**
 * The one guard in front of every /admin route (CONS-19 admin access; SECURITY.md "Admin access"):
 * - an admin session (`__Host-mcp-admin`, idle and absolute timeouts) of a subject still listed
 *   in ADMIN_SUBJECTS ⇒ allowed, with a CSRF token bound to that session (src/http/csrf.ts);
 * - a signed-in non-admin ⇒ 403, one admin.rejected row each, naming them;
 * - nobody signed in ⇒ 401 with a sign-in button (a POST from this page; a GET of /admin/login
 *   starts nothing, src/session/sign-in.ts): an unauthenticated refusal (DESIGN §9), budgeted per
 *   address (RATE_LIMIT_REJECTED: 429 beyond it) and counted per address, reason and minute
 *   (admin.rejected_aggregate; src/audit/refusal-budget.ts).
 * Every admin page gets the page CSP (no script, `form-action 'self'`, src/http/csp.ts). Every
 * POST must carry this session's CSRF token (`checkCsrf`), checked before anything runs. A GET
 * that acts (the audit export, itself an audit row) refuses another site's navigation
 * (`refuseCrossSite`): the admin cookie is SameSite=Lax, so a link on another site carries it.
 */
import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../config/load.js';
import type { Audit } from '../audit/audit.js';
import type { RefusalBudget } from '../audit/refusal-budget.js';
import type { Csrf } from '../http/csrf.js';
import { pageCsp } from '../http/csp.js';
import { startedHere } from '../http/fetch-metadata.js';
import type { Stores } from '../store/index.js';
import { ERRORS, OAuthError } from '../errors/oauth-error.js';
import { currentSession } from '../session/browser.js';
import { showSignIn, type SignInDeps } from '../session/sign-in.js';

export interface AdminGuardDeps extends SignInDeps {
  config: Readonly<Config>;
  audit: Audit;
  csrf: Csrf;
  refusals: RefusalBudget;
  stores: SignInDeps['stores'] & Pick<Stores, 'adminSessions' | 'browserSessions'>;
}

export interface AdminLocals {
  subject: string;
  displayName: string | null;
  sessionId: string;
  csrf: string;
}

const CSRF_PURPOSE = 'admin';

/** The signed-in admin of this request (set by the guard). */
export const adminOf = (res: Response) => res.locals.admin as AdminLocals;

/** Who acted, for the operator actions' audit rows. */
export const actorOf = (req: Request, res: Response) => ({ actor: 'admin' as const, subject: adminOf(res).subject, requestId: req.id, ip: req.ip });

export function adminGuard(deps: AdminGuardDeps) {
  const { config, audit, stores } = deps;
  const base = config.urls.basePath;
  return async (req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Content-Security-Policy', pageCsp());
    const sessionId = deps.cookies.read(req, 'admin');
    const session = await stores.adminSessions.use(sessionId, config.ttl.adminIdle);
    if (session && sessionId && config.adminSubjects.includes(session.subject)) {
      res.locals.admin = { subject: session.subject, displayName: session.display_name, sessionId, csrf: deps.csrf.forSession(CSRF_PURPOSE, sessionId) } satisfies AdminLocals;
      return next();
    }
    const who = session?.subject ?? (await currentSession(deps, req))?.session.subject;
    res.setHeader('Cache-Control', 'no-store');
    if (who) {
      // A signed-in user who is not an admin: one audit row per refusal, naming them.
      await audit.record({ event: 'admin.rejected', reason: 'not_an_admin', subject: who, details: { method: req.method, path: req.path } });
      return next(ERRORS.forbiddenPage('Not an administrator', 'Your account is not allowed into the admin pages of this server.', 'not_an_admin'));
    }
    deps.refusals
      .refuse('admin.rejected_aggregate', req.ip, 'not_signed_in', { method: req.method, path: req.path })
      .then(async (verdict) => {
        if (verdict.limited) {
          const refusal = ERRORS.tooManyRequests(verdict.retryAfterSeconds);
          return next(
            new OAuthError(refusal.code, refusal.description, 429, 'refusals_limited', refusal.headers, {
              title: 'Too many requests',
              message: 'Too many refused requests came from this address. Try again later.',
            }),
          );
        }
        // The export (a GET that acts) returns to its page instead: the redirect after sign-in comes
        // back through U, cross-site, and the export would refuse it (review 2026-12-07).
        const path = req.path === '/audit/export' ? '/audit' : req.path;
        const returnTo = req.method === 'GET' ? `${base}/admin${path === '/' ? '' : path}` : `${base}/admin`;
        await showSignIn(deps, req, res, 'admin', returnTo, 401);
      })
      .catch(next);
  };
}

/** CSRF for every admin POST: the token must be this session's. */
export function checkCsrf(deps: Pick<AdminGuardDeps, 'audit' | 'csrf'>) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const admin = adminOf(res);
    if (!deps.csrf.checkSession(CSRF_PURPOSE, admin.sessionId, req.body?.csrf)) {
      await deps.audit.record({ event: 'admin.rejected', reason: 'csrf', subject: admin.subject, details: { path: req.path } });
      return next(ERRORS.accessDenied('The form could not be verified as coming from this admin session. Reload the page and try again.', 'csrf'));
    }
    next();
  };
}

/**
 * For a GET that acts: 403 when `Sec-Fetch-Site` is present and neither `same-origin` nor `none`
 * (src/http/fetch-metadata.ts), audited as admin.rejected; nothing else runs. Absent (a client
 * without Fetch Metadata, such as curl) is allowed: a browser always sends it on navigations.
 */
export function refuseCrossSite(deps: Pick<AdminGuardDeps, 'audit'>) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const site = req.get('sec-fetch-site');
    if (site !== undefined && !startedHere(site)) {
      await deps.audit.record({ event: 'admin.rejected', reason: 'cross_site', subject: adminOf(res).subject, details: { method: req.method, path: req.path, sec_fetch_site: site } });
      return next(ERRORS.accessDenied("This link was not opened from this server's admin pages. Open the audit log here and use its export links.", 'cross_site'));
    }
    next();
  };
}
