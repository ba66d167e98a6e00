/**
 * What every admin page module shares: its dependencies, the page renderer (the admin layout
 * with the signed-in admin and their CSRF token) and the form parser.
 */
import express, { type Request, type RequestHandler, type Response } from 'express';
import type { Views } from '../views/render.js';
import type { Stores } from '../store/index.js';
import type { AdminOps } from '../consent/operations.js';
import type { KeyRing } from '../crypto/keys.js';
import { adminOf, checkCsrf, refuseCrossSite, type AdminGuardDeps } from './guard.js';

export interface AdminDeps extends AdminGuardDeps {
  views: Views;
  keys: KeyRing;
  ops: AdminOps;
  stores: AdminGuardDeps['stores'] & Pick<Stores, 'clientsMeta' | 'consents' | 'auditLog'>;
}

/** Rows per page of the clients and audit lists. */
export const PAGE_SIZE = 50;

export interface AdminContext {
  deps: AdminDeps;
  base: string;
  /** the body parser of admin forms */
  form: RequestHandler;
  /** CSRF check of admin POSTs (src/admin/guard.ts) */
  csrf: RequestHandler;
  /** refusal of another site's navigation, for a GET that acts (src/admin/guard.ts) */
  notCrossSite: RequestHandler;
  render(req: Request, res: Response, template: string, title: string, data: Record<string, unknown>): void;
}

export function adminContext(deps: AdminDeps): AdminContext {
  const base = deps.config.urls.basePath;
  return {
    deps,
    base,
    form: express.urlencoded({ extended: false, limit: 4096, parameterLimit: 20 }),
    csrf: checkCsrf(deps),
    notCrossSite: refuseCrossSite(deps),
    render(req, res, template, title, data) {
      const admin = adminOf(res);
      res.setHeader('Cache-Control', 'no-store');
      res.type('html').send(deps.views.render(template, { title, mainClass: 'wide', admin: { name: admin.displayName ?? admin.subject, csrf: admin.csrf, current: template }, base, ...data }, req.id));
    },
  };
}
