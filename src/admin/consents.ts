/**
 * Admin: consents — who approved which client, for what, until when; revoke with the full cascade
 * (src/consent/operations.ts). "Active" is the one rule of src/consent/status.ts. The `?revoked=`
 * notice names only a consent that really is revoked (src/views/page-messages.ts).
 */
import type { Router } from 'express';
import { ERRORS } from '../errors/oauth-error.js';
import { consentsWithClientNames } from '../consent/present.js';
import { revokedConsentId } from '../views/page-messages.js';
import { actorOf } from './guard.js';
import type { AdminContext } from './context.js';

export function mountConsents(router: Router, ctx: AdminContext): void {
  const { deps, base, render, form, csrf } = ctx;
  const { stores } = deps;

  router.get('/consents', async (req, res) => {
    const subject = typeof req.query.subject === 'string' ? req.query.subject.slice(0, 200) : '';
    const client = typeof req.query.client === 'string' ? req.query.client.slice(0, 200) : '';
    const all = req.query.all === '1';
    render(req, res, 'admin/consents', 'Consents', {
      subject,
      client,
      all,
      consents: await consentsWithClientNames(
        stores.clientsMeta,
        await stores.consents.list({ subject: subject || undefined, clientId: client || undefined, status: all ? undefined : 'active', limit: 200 }),
      ),
      revoked: await revokedConsentId(req.query.revoked, (id) => stores.consents.byId(id)),
    });
  });

  router.post('/consents/:id/revoke', form, csrf, async (req, res, next) => {
    const consent = await deps.ops.revokeConsent(Number(req.params.id), actorOf(req, res));
    if (!consent) return next(ERRORS.notFound());
    const back = typeof req.body?.back === 'string' && req.body.back.startsWith(`${base}/admin/`) && !req.body.back.includes('//') ? req.body.back : `${base}/admin/consents`;
    res.redirect(303, `${back}${back.includes('?') ? '&' : '?'}revoked=${consent.id}`);
  });
}
