/**
 * The admin console (/admin): who registered which client, who consented to what, what happened
 * when, is the log intact — and shutting a bad client out. Server-rendered, no script.
 * Access (one guard for every route, `requireAdmin`):
 * - an admin session (`__Host-mcp-admin`, idle and absolute timeouts) of a subject still listed
 *   in ADMIN_SUBJECTS ⇒ allowed; a signed-in non-admin ⇒ 403; nobody signed in ⇒ 401 with a
 *   sign-in button (a POST from this page; a GET of /admin/login starts nothing,
 *   src/flow/sign-in.ts). A refusal of a signed-in user is audited as admin.rejected; one of
 *   nobody is budgeted (RATE_LIMIT_REJECTED: 429 beyond it) and counted per address, reason and
 *   minute (admin.rejected_aggregate; src/http/refusal-budget.ts).
 * - every POST carries a CSRF token bound to the admin session (HMAC), checked before anything;
 * - every action is audited (admin.client_disabled, admin.consent_revoked, …);
 * - the notices after an action (`?done=`, `?revoked=`) are only our own fixed words, shown when
 *   true (src/views/page-messages.ts): a link cannot make these pages say what it likes.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { FlowDeps } from '../flow/deps.js';
import type { AdminOps } from './ops.js';
import { AUDIT_EVENTS } from '../audit/events.js';
import type { AuditFilter } from '../store/audit-log.js';
import type { AuditRow } from '../audit/chain.js';
import { verifyChainInWorker } from '../audit/verify-async.js';
import { describeVerification, type VerifyResult } from '../audit/verify.js';
import { checkpointPath } from '../audit/checkpoint.js';
import { showSignIn, startSignInFromPage, type SignInDeps } from '../flow/sign-in.js';
import { ERRORS } from '../errors/oauth-error.js';
import { redirectHosts } from '../flow/1-register.js';
import { csvLine, auditFilterFromQuery, type AuditQuery } from './audit-query.js';
import { clientDoneMessage, revokedConsentId } from '../views/page-messages.js';

export const AUDIT_PAGE_SIZE = 50;

interface AdminLocals {
  subject: string;
  displayName: string | null;
  sessionId: string;
  csrf: string;
}

export interface AdminDeps extends SignInDeps {
  ops: AdminOps;
}

const SECURITY_OUTCOMES = ['deny', 'error'];

export function adminRouter(deps: AdminDeps): Router {
  const { config, audit, views, keys, stores } = deps;
  const base = config.urls.basePath;
  const router = express.Router();
  let lastVerification: (VerifyResult & { at: string; by: string; facts: string[] }) | undefined;

  const csrfFor = (sessionId: string) => keys.csrfMac(`admin:${sessionId}`);
  const withName = consentWithClientName(stores);

  function render(req: Request, res: Response, template: string, title: string, data: Record<string, unknown>, status = 200) {
    const admin = res.locals.admin as AdminLocals;
    res.status(status).setHeader('Cache-Control', 'no-store');
    res.type('html').send(
      views.render(template, { title, mainClass: 'wide', admin: { name: admin.displayName ?? admin.subject, csrf: admin.csrf, current: template }, base, ...data }, req.id),
    );
  }

  // Login is reachable without an admin session; it starts only from the button on P's own
  // page (POST + token, src/flow/sign-in.ts), never from a GET another site can trigger.
  router.get('/login', (req, res, next) => showSignIn(deps, req, res, 'admin', req.query.return).catch(next));
  router.post('/login', ...startSignInFromPage(deps, 'admin'));

  // The guard: every route below needs an admin session.
  router.use((req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Content-Security-Policy', "default-src 'self';base-uri 'none';script-src 'none';style-src 'self';img-src 'self' data:;object-src 'none';frame-ancestors 'none';form-action 'self'");
    const sessionId = deps.cookies.read(req, 'admin');
    const session = stores.adminSessions.use(sessionId, config.ttl.adminIdle);
    if (session && sessionId && config.adminSubjects.includes(session.subject)) {
      res.locals.admin = { subject: session.subject, displayName: session.display_name, sessionId, csrf: csrfFor(sessionId) } satisfies AdminLocals;
      return next();
    }
    const browser = stores.browserSessions.find(deps.cookies.read(req, 'session'));
    const who = session?.subject ?? browser?.subject;
    res.setHeader('Cache-Control', 'no-store');
    if (who) {
      // A signed-in user who is not an admin: one audit row per refusal, naming them.
      audit.record({ event: 'admin.rejected', reason: 'not_an_admin', subject: who, details: { method: req.method, path: req.path } });
      res.status(403).type('html').send(views.render('error', { title: 'Not an administrator', message: 'Your account is not allowed into the admin pages of this server.', code: 'access_denied' }, req.id));
      return;
    }
    // Nobody signed in: an unauthenticated refusal (DESIGN §9), counted against the address's
    // RATE_LIMIT_REJECTED budget (429 beyond it) and tallied per address, reason and minute.
    deps.refusals
      .refuse('admin.rejected_aggregate', req.ip, 'not_signed_in', { method: req.method, path: req.path })
      .then(async (verdict) => {
        if (verdict.limited) {
          res.setHeader('Retry-After', String(verdict.retryAfterSeconds));
          res.status(429).type('html').send(views.render('error', { title: 'Too many requests', message: 'Too many refused requests came from this address. Try again later.', code: 'too_many_requests' }, req.id));
          return;
        }
        const returnTo = req.method === 'GET' ? `${base}/admin${req.path === '/' ? '' : req.path}` : `${base}/admin`;
        await showSignIn(deps, req, res, 'admin', returnTo, 401);
      })
      .catch(next);
  });

  const form = express.urlencoded({ extended: false, limit: 4096, parameterLimit: 20 });
  /** CSRF for every admin POST: the token must be this session's. */
  const checkCsrf = (req: Request, res: Response, next: NextFunction) => {
    const admin = res.locals.admin as AdminLocals;
    const token = typeof req.body?.csrf === 'string' ? req.body.csrf : '';
    if (!token || !keys.checkCsrfMac(`admin:${admin.sessionId}`, token)) {
      audit.record({ event: 'admin.rejected', reason: 'csrf', subject: admin.subject, details: { path: req.path } });
      return next(ERRORS.accessDenied('The form could not be verified as coming from this admin session. Reload the page and try again.', 'csrf'));
    }
    next();
  };
  const who = (req: Request, res: Response) => ({ actor: 'admin' as const, subject: (res.locals.admin as AdminLocals).subject, requestId: req.id, ip: req.ip });

  router.post('/logout', form, checkCsrf, (req, res) => {
    const admin = res.locals.admin as AdminLocals;
    stores.adminSessions.close(admin.sessionId);
    deps.cookies.clear(res, 'admin');
    audit.record({ event: 'admin.logout', subject: admin.subject });
    res.redirect(303, `${base}/admin/login`);
  });

  // ── Overview ────────────────────────────────────────────────────────────────────────────
  router.get('/', (req, res) => {
    const since = new Date(Date.now() - 86_400_000).toISOString();
    const clients = stores.clientsMeta.count();
    render(req, res, 'admin/overview', 'Overview', {
      counts: {
        clients: clients.total,
        disabled: clients.disabled,
        consents: stores.consents.countActive(),
        tokens24h: stores.auditLog.count({ event: 'token.issued', from: since }),
        denials24h: stores.auditLog.count({ outcome: 'deny', from: since }),
      },
      tip: stores.auditLog.tip(),
      verification: lastVerification,
      recent: stores.auditLog.listOutcomes(SECURITY_OUTCOMES, 12).map(presentRow),
    });
  });

  // ── Clients ─────────────────────────────────────────────────────────────────────────────
  router.get('/clients', (req, res) => {
    const q = typeof req.query.q === 'string' ? req.query.q.slice(0, 200) : '';
    const status = req.query.status === 'active' || req.query.status === 'disabled' ? req.query.status : undefined;
    const page = Math.max(0, Number(req.query.page) || 0);
    const rows = stores.clientsMeta.list({ q: q || undefined, status, limit: AUDIT_PAGE_SIZE + 1, offset: page * AUDIT_PAGE_SIZE });
    render(req, res, 'admin/clients', 'Clients', {
      q,
      status: status ?? '',
      page,
      more: rows.length > AUDIT_PAGE_SIZE,
      clients: rows.slice(0, AUDIT_PAGE_SIZE).map((c) => ({ ...c, registered: fmt(c.registered_at), lastUsed: fmt(c.last_used_at) })),
    });
  });

  router.get('/clients/:id', (req, res, next) => {
    const detail = deps.ops.client(String(req.params.id));
    if (!detail) return next(ERRORS.notFound());
    const uris = (detail.metadata.redirect_uris as string[] | undefined) ?? [];
    render(req, res, 'admin/client', detail.meta?.client_name ?? detail.clientId, {
      client: detail,
      redirectUris: uris,
      hosts: redirectHosts(uris),
      registered: fmt(detail.meta?.registered_at),
      lastUsed: fmt(detail.meta?.last_used_at),
      disabled: detail.meta?.disabled_at ? fmt(detail.meta.disabled_at) : undefined,
      consents: stores.consents.list({ clientId: detail.clientId, limit: 200 }).map(withName),
      done: clientDoneMessage(req.query.done, { disabled: Boolean(detail.meta?.disabled_at) }),
    });
  });

  router.post('/clients/:id/disable', form, checkCsrf, (req, res, next) => {
    const result = deps.ops.disableClient(String(req.params.id), who(req, res));
    if (!result) return next(ERRORS.notFound());
    res.redirect(303, `${base}/admin/clients/${encodeURIComponent(String(req.params.id))}?done=disabled`);
  });
  router.post('/clients/:id/enable', form, checkCsrf, (req, res, next) => {
    if (!deps.ops.enableClient(String(req.params.id), who(req, res))) return next(ERRORS.notFound());
    res.redirect(303, `${base}/admin/clients/${encodeURIComponent(String(req.params.id))}?done=enabled`);
  });
  router.post('/clients/:id/delete', form, checkCsrf, (req, res, next) => {
    if (req.body?.confirm !== 'yes') return next(ERRORS.invalidRequest('tick the confirmation box to delete a client', 'unconfirmed'));
    if (!deps.ops.deleteClient(String(req.params.id), who(req, res))) return next(ERRORS.notFound());
    res.redirect(303, `${base}/admin/clients?deleted=${encodeURIComponent(String(req.params.id))}`);
  });

  // ── Consents ────────────────────────────────────────────────────────────────────────────
  router.get('/consents', (req, res) => {
    const subject = typeof req.query.subject === 'string' ? req.query.subject.slice(0, 200) : '';
    const client = typeof req.query.client === 'string' ? req.query.client.slice(0, 200) : '';
    const all = req.query.all === '1';
    render(req, res, 'admin/consents', 'Consents', {
      subject,
      client,
      all,
      consents: stores.consents.list({ subject: subject || undefined, clientId: client || undefined, active: !all, limit: 200 }).map(withName),
      revoked: revokedConsentId(req.query.revoked, (id) => stores.consents.byId(id)),
    });
  });
  router.post('/consents/:id/revoke', form, checkCsrf, (req, res, next) => {
    const consent = deps.ops.revokeConsent(Number(req.params.id), who(req, res));
    if (!consent) return next(ERRORS.notFound());
    const back = typeof req.body?.back === 'string' && req.body.back.startsWith(`${base}/admin/`) && !req.body.back.includes('//') ? req.body.back : `${base}/admin/consents`;
    res.redirect(303, `${back}${back.includes('?') ? '&' : '?'}revoked=${consent.id}`);
  });

  // ── Audit log ───────────────────────────────────────────────────────────────────────────
  router.get('/audit', (req, res) => {
    const { filter, form: values } = auditFilterFromQuery(req.query as AuditQuery);
    const rows = stores.auditLog.page(filter, AUDIT_PAGE_SIZE);
    const first = rows[0];
    const last = rows.at(-1);
    const query = new URLSearchParams(Object.entries(values).filter(([, v]) => v) as [string, string][]);
    render(req, res, 'admin/audit', 'Audit log', {
      values,
      events: Object.keys(AUDIT_EVENTS),
      rows: rows.map(presentRow),
      newer: first && (filter.beforeSeq !== undefined || filter.afterSeq !== undefined) ? `${base}/admin/audit?${withParam(query, 'after', String(first.seq))}` : undefined,
      older: last && rows.length === AUDIT_PAGE_SIZE ? `${base}/admin/audit?${withParam(query, 'before', String(last.seq))}` : undefined,
      exportNdjson: `${base}/admin/audit/export?${withParam(query, 'format', 'ndjson')}`,
      exportCsv: `${base}/admin/audit/export?${withParam(query, 'format', 'csv')}`,
      verification: lastVerification,
      tip: stores.auditLog.tip(),
    });
  });

  router.get('/audit/export', (req, res) => {
    const { filter } = auditFilterFromQuery(req.query as AuditQuery);
    delete filter.beforeSeq;
    delete filter.afterSeq;
    const csv = req.query.format === 'csv';
    const admin = res.locals.admin as AdminLocals;
    audit.record({ event: 'admin.audit_exported', subject: admin.subject, details: { format: csv ? 'csv' : 'ndjson', filter } });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Type', csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="audit-${stamp}.${csv ? 'csv' : 'ndjson'}"`);
    const columns: (keyof AuditRow)[] = ['seq', 'ts', 'event', 'outcome', 'reason', 'subject', 'client_id', 'ip', 'request_id', 'details', 'prev_hash', 'hash', 'key_id'];
    if (csv) res.write(`${csvLine(columns)}\n`);
    for (const row of stores.auditLog.iterate(filter)) {
      res.write(csv ? `${csvLine(columns.map((c) => row[c]))}\n` : `${JSON.stringify({ ...row, details: row.details ? JSON.parse(row.details) : null })}\n`);
    }
    res.end();
  });

  router.post('/audit/verify', form, checkCsrf, async (req, res, next) => {
    try {
      const admin = res.locals.admin as AdminLocals;
      audit.flush();
      // The same verification as `audit verify` (DESIGN §9): keyed MACs and the checkpoint file.
      // The worker gets the derived audit keys only, never SECRET_KEY.
      const result = await verifyChainInWorker(config.databasePath, { keys: keys.auditKeys(), checkpointFile: checkpointPath(config) });
      lastVerification = { ...result, at: new Date().toISOString(), by: admin.displayName ?? admin.subject, facts: [...describeVerification(result), ...result.warnings.map((w) => `warning: ${w}`)] };
      const checkpoint = result.checkpointFile?.status;
      audit.record({ event: 'admin.audit_verified', subject: admin.subject, reason: result.ok ? 'intact' : 'broken', details: result.ok ? { rows: result.rows, tip_seq: result.tipSeq, keyed_from: result.keyedFrom, checkpoint } : { first_bad_seq: result.firstBadSeq, problem: result.problem, checkpoint } });
      res.redirect(303, `${base}/admin/audit?verified=1`);
    } catch (err) {
      next(err);
    }
  });

  return router;
}

function withParam(query: URLSearchParams, name: string, value: string): string {
  const copy = new URLSearchParams(query);
  copy.delete('before');
  copy.delete('after');
  copy.set(name, value);
  return copy.toString();
}

function fmt(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC') : '—';
}

function presentRow(row: AuditRow) {
  let details: string | undefined;
  if (row.details) {
    try {
      details = JSON.stringify(JSON.parse(row.details), null, 2);
    } catch {
      details = row.details;
    }
  }
  return { ...row, time: row.ts.replace('T', ' ').replace('Z', ' UTC'), detailsPretty: details };
}

function presentConsent(c: ReturnType<FlowDeps['stores']['consents']['list']>[number]) {
  const now = Date.now();
  let host = c.redirect_uri;
  try {
    host = new URL(c.redirect_uri).host || c.redirect_uri;
  } catch {
    // keep the raw value
  }
  return {
    ...c,
    host,
    granted: fmt(c.granted_at),
    expires: fmt(c.expires_at),
    lastUsed: fmt(c.last_used_at),
    status: c.revoked_at ? `revoked (${c.revoked_reason ?? 'unknown'})` : c.expires_at <= now ? 'expired' : 'active',
    active: !c.revoked_at && c.expires_at > now,
  };
}

/** A consent as shown, with its client's (self-asserted) name: for the admin and account pages. */
function consentWithClientName(stores: FlowDeps['stores']) {
  return (c: Parameters<typeof presentConsent>[0]) => ({ ...presentConsent(c), clientName: stores.clientsMeta.get(c.client_id)?.client_name ?? null });
}

export { presentConsent, consentWithClientName, fmt };
