/**
 * Admin: clients — who registered which client (DCR) or which document it came from (CIMD: URL,
 * last fetch, cache expiry, failures; issue 12), from where, used when; disable (it becomes unknown
 * to the authorization server and its active consents are revoked), enable, delete (confirmed).
 * Every action goes through src/consent/operations.ts (cascade + audit). The `?done=` notice is
 * only our own words, shown when true (src/views/page-messages.ts).
 */
import type { Router } from 'express';
import { ERRORS } from '../errors/oauth-error.js';
import { redirectHosts } from '../oauth/redirect-uri.js';
import { consentsWithClientNames, fmt } from '../consent/present.js';
import { clientDoneMessage } from '../views/page-messages.js';
import type { ClientMeta } from '../store/clients-meta.js';
import { actorOf } from './guard.js';
import { PAGE_SIZE, type AdminContext } from './context.js';

/** A CIMD client's document facts for the admin pages (issue 12): URL, last fetch, cache expiry, failures. */
function cimdFacts(c: ClientMeta) {
  if (c.kind !== 'cimd') return undefined;
  return { url: c.cimd_url ?? c.client_id, fetched: fmt(c.cimd_fetched_at), expires: fmt(c.cimd_expires_at), failures: c.cimd_failures, lastError: c.cimd_last_error };
}

export function mountClients(router: Router, ctx: AdminContext): void {
  const { deps, base, render, form, csrf } = ctx;
  const { stores } = deps;
  const clientUrl = (id: string) => `${base}/admin/clients/${encodeURIComponent(id)}`;

  router.get('/clients', async (req, res) => {
    const q = typeof req.query.q === 'string' ? req.query.q.slice(0, 200) : '';
    const status = req.query.status === 'active' || req.query.status === 'disabled' ? req.query.status : undefined;
    const page = Math.min(Math.max(0, Math.floor(Number(req.query.page)) || 0), 100_000); // a whole number for the query's OFFSET
    const kind = req.query.kind === 'dcr' || req.query.kind === 'cimd' ? req.query.kind : undefined;
    const rows = await stores.clientsMeta.list({ q: q || undefined, status, kind, limit: PAGE_SIZE + 1, offset: page * PAGE_SIZE });
    render(req, res, 'admin/clients', 'Clients', {
      q,
      status: status ?? '',
      kind: kind ?? '',
      page,
      more: rows.length > PAGE_SIZE,
      clients: rows.slice(0, PAGE_SIZE).map((c) => ({ ...c, registered: fmt(c.registered_at), lastUsed: fmt(c.last_used_at), cimd: cimdFacts(c) })),
    });
  });

  router.get('/clients/:id', async (req, res, next) => {
    const detail = await deps.ops.client(String(req.params.id));
    if (!detail) return next(ERRORS.notFound());
    const uris = (detail.metadata.redirect_uris as string[] | undefined) ?? [];
    render(req, res, 'admin/client', detail.meta?.client_name ?? detail.clientId, {
      client: detail,
      redirectUris: uris,
      hosts: redirectHosts(uris),
      registered: fmt(detail.meta?.registered_at),
      cimd: detail.meta ? cimdFacts(detail.meta) : undefined,
      lastUsed: fmt(detail.meta?.last_used_at),
      disabled: detail.meta?.disabled_at ? fmt(detail.meta.disabled_at) : undefined,
      consents: await consentsWithClientNames(stores.clientsMeta, await stores.consents.list({ clientId: detail.clientId, limit: 200 })),
      done: clientDoneMessage(req.query.done, { disabled: Boolean(detail.meta?.disabled_at) }),
    });
  });

  router.post('/clients/:id/disable', form, csrf, async (req, res, next) => {
    if (!(await deps.ops.disableClient(String(req.params.id), actorOf(req, res)))) return next(ERRORS.notFound());
    res.redirect(303, `${clientUrl(String(req.params.id))}?done=disabled`);
  });
  router.post('/clients/:id/enable', form, csrf, async (req, res, next) => {
    if (!(await deps.ops.enableClient(String(req.params.id), actorOf(req, res)))) return next(ERRORS.notFound());
    res.redirect(303, `${clientUrl(String(req.params.id))}?done=enabled`);
  });
  router.post('/clients/:id/delete', form, csrf, async (req, res, next) => {
    if (req.body?.confirm !== 'yes') return next(ERRORS.invalidRequest('tick the confirmation box to delete a client', 'unconfirmed'));
    if (!(await deps.ops.deleteClient(String(req.params.id), actorOf(req, res)))) return next(ERRORS.notFound());
    res.redirect(303, `${base}/admin/clients?deleted=${encodeURIComponent(String(req.params.id))}`);
  });
}
