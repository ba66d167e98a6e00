/**
 * The admin console (/admin): who registered which client, who consented to what, what happened
 * when, is the log intact — and shutting a bad client out. Server-rendered, no script.
 * - /login is reachable without an admin session; signing in starts only from the button on P's
 *   own page (POST + token, src/session/sign-in.ts), never from a GET another site can trigger;
 * - the one guard (src/admin/guard.ts) stands in front of every other route;
 * - every action is audited (admin.client_disabled, admin.consent_revoked, …) through the shared
 *   operator actions (src/consent/operations.ts);
 * - the notices after an action (`?done=`, `?revoked=`) are only our own fixed words, shown when
 *   true (src/views/page-messages.ts): a link cannot make these pages say what it likes.
 * Pages: src/admin/clients.ts, src/admin/consents.ts, src/admin/audit.ts (with the overview).
 */
import express, { type Router } from 'express';
import { showSignIn, startSignInFromPage } from '../session/sign-in.js';
import { adminGuard, adminOf } from './guard.js';
import { adminContext, type AdminDeps } from './context.js';
import { mountClients } from './clients.js';
import { mountConsents } from './consents.js';
import { mountAudit } from './audit.js';

export type { AdminDeps } from './context.js';

export function adminRouter(deps: AdminDeps): Router {
  const ctx = adminContext(deps);
  const router = express.Router();
  router.get('/login', (req, res, next) => showSignIn(deps, req, res, 'admin', req.query.return).catch(next));
  router.post('/login', ...startSignInFromPage(deps, 'admin'));
  router.use(adminGuard(deps));
  router.post('/logout', ctx.form, ctx.csrf, async (_req, res) => {
    const admin = adminOf(res);
    await deps.stores.adminSessions.close(admin.sessionId);
    deps.cookies.clear(res, 'admin');
    await deps.audit.record({ event: 'admin.logout', subject: admin.subject });
    res.redirect(303, `${ctx.base}/admin/login`);
  });
  mountAudit(router, ctx);
  mountClients(router, ctx);
  mountConsents(router, ctx);
  return router;
}
