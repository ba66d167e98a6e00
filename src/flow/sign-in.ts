/**
 * Signing in to P itself — a consent-free upstream login, for the admin pages and for the user's
 * /account page (CONS-19). It reuses the browser-bound upstream transaction of steps 4–5 (fresh
 * state, nonce and PKCE; `__Host-` binding cookie; single use; ten minutes), so a sign-in link
 * started elsewhere cannot log this browser in (login CSRF, AT-12).
 * - admin: the upstream subject must be listed in ADMIN_SUBJECTS; the admin session gets its own
 *   `__Host-` cookie with idle and absolute timeouts. Anyone else is refused (403) and audited.
 * - account: P's browser session is opened (or renewed) for the subject.
 * The return path is always one of P's own pages, never a URL from the request.
 */
import type { Request, Response } from 'express';
import type { SignInTransaction } from '../store/upstream-transactions.js';
import type { UpstreamIdentity } from '../upstream/presets.js';
import { errorPageHtml } from '../errors/render.js';
import type { FlowDeps } from './deps.js';
import { redirectToUpstream } from './4-upstream-redirect.js';

/** Only P's own admin and account pages are return targets (no open redirect). */
export function safeReturnTo(deps: FlowDeps, purpose: 'admin' | 'account', requested: unknown): string {
  const base = deps.config.urls.basePath;
  const home = `${base}/${purpose}`;
  if (typeof requested !== 'string') return home;
  if (!requested.startsWith(`${home}/`) && requested !== home) return home;
  if (/[\\\s]|\/\/|%2f|%5c|\.\./i.test(requested.slice(base.length))) return home;
  return requested.split('#')[0] as string;
}

export async function startSignIn(deps: FlowDeps, req: Request, res: Response, purpose: 'admin' | 'account', returnTo: unknown): Promise<void> {
  await redirectToUpstream(deps, req, res, { purpose, returnTo: safeReturnTo(deps, purpose, returnTo) }, undefined);
}

export function completeSignIn(deps: FlowDeps, req: Request, res: Response, tx: SignInTransaction, identity: UpstreamIdentity): void {
  const { config, audit } = deps;
  res.setHeader('Cache-Control', 'no-store');
  if (tx.purpose === 'admin') {
    if (!config.adminSubjects.includes(identity.subject)) {
      audit.record({ event: 'admin.login_denied', subject: identity.subject, reason: 'not_an_admin' });
      res.status(403).type('html').send(
        errorPageHtml(
          deps.views,
          {
            status: 403,
            code: 'access_denied',
            title: 'Not an administrator',
            message: `You signed in as ${identity.displayName ?? identity.subject} (subject ${identity.subject}), which is not listed in ADMIN_SUBJECTS on this server.`,
          },
          req.id,
        ),
      );
      return;
    }
    const id = deps.stores.adminSessions.open(identity.subject, identity.displayName, config.ttl.adminSession);
    deps.cookies.write(res, 'admin', id, config.ttl.adminSession);
    audit.record({ event: 'admin.login', subject: identity.subject, details: { display_name: identity.displayName } });
    res.redirect(303, tx.returnTo);
    return;
  }
  const current = deps.stores.browserSessions.find(deps.cookies.read(req, 'session'));
  if (!current || current.subject !== identity.subject) {
    const id = deps.stores.browserSessions.open(identity.subject, identity.displayName, config.ttl.session);
    deps.cookies.write(res, 'session', id, config.ttl.session);
  }
  audit.record({ event: 'account.signed_in', subject: identity.subject });
  res.redirect(303, tx.returnTo);
}
