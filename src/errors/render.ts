/**
 * The only place that writes an error to a response (style C3). OAuthErrors — and every error a
 * client's input caused, mapped once by `refusalOf` (src/errors/oauth-error.ts; DESIGN §9: no
 * 5xx for bad input) — go out with their RFC code and our own description: JSON for API clients,
 * P's error page for browsers, never a stack trace or a library's message. A database locked past
 * its busy timeout is not a bug: 503 `temporarily_unavailable` with Retry-After (`isDatabaseBusy`).
 * Anything else is a bug: logged with its stack and answered `server_error` 500 with the request
 * id and a generic message.
 * The same holds for oidc-provider's endpoints (`providerErrorRenderer` for its pages,
 * `providerErrorBodies` for its JSON).
 */
import type { NextFunction, Request, Response } from 'express';
import { errors as oidcErrors, type ErrorOut, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Views } from '../views/render.js';
import { ERRORS, OAuthError, refusalOf } from './oauth-error.js';
import { isDatabaseBusy } from './database-unavailable.js';

const TITLES: Record<string, string> = {
  invalid_request: 'The request is not valid',
  invalid_client: 'Unknown application',
  invalid_redirect_uri: 'The redirect address is not registered',
  unauthorized_client: 'This application is not allowed to do that',
  access_denied: 'Access was denied',
  not_found: 'Page not found',
  server_error: 'Something went wrong on our side',
  temporarily_unavailable: 'Temporarily unavailable',
  too_many_requests: 'Too many requests',
};

const MESSAGES: Record<string, string> = {
  invalid_request: 'The application that sent you here made a request this server cannot accept.',
  invalid_client: 'The application that sent you here is not registered with this server, or its registration has expired or was removed.',
  invalid_redirect_uri: 'The application asked to send you to an address it did not register, so you were not sent anywhere.',
  access_denied: 'The request was refused.',
  not_found: 'There is nothing at this address.',
  server_error: 'An unexpected error occurred. Nothing was shared with the application.',
  temporarily_unavailable: 'The service cannot complete this request right now. Try again in a moment.',
  too_many_requests: 'Too many requests came from your network. Wait a minute and try again.',
  session_not_found: 'This sign-in has expired, start again from your application. Nothing was shared with it.',
};

/** Pages for particular refusals, by their reason. */
const PAGES: Record<string, { title: string; message: string }> = {
  session_not_found: { title: 'This sign-in has expired', message: MESSAGES.session_not_found as string },
  interaction_expired: { title: 'This sign-in has expired', message: MESSAGES.session_not_found as string },
};

export interface ErrorPageModel {
  status: number;
  code: string;
  description?: string | undefined;
  title?: string | undefined;
  message?: string | undefined;
}

export function errorPageHtml(views: Views, model: ErrorPageModel, requestId?: string): string {
  return views.render(
    'error',
    {
      title: model.title ?? TITLES[model.code] ?? 'This request could not be completed',
      message: model.message ?? MESSAGES[model.code] ?? 'The request could not be completed.',
      code: model.code,
      description: model.description,
    },
    requestId,
  );
}

function wantsHtml(req: Request): boolean {
  try {
    return req.accepts(['json', 'html']) === 'html';
  } catch {
    return false; // an unparsable Accept header: JSON
  }
}

/** The page for a refusal: its own page (with the way back to the application), or the generic one. */
function pageOf(views: Views, error: OAuthError, requestId: string | undefined): string {
  if (error.page?.upstream) return views.render('upstream-error', { title: error.page.title, message: error.page.message, returnTo: error.page.returnTo }, requestId);
  if (error.page) return errorPageHtml(views, { status: error.status, code: error.code, title: error.page.title, message: error.page.message }, requestId);
  return errorPageHtml(views, { status: error.status, code: error.code, description: error.status < 500 ? error.description : undefined, ...PAGES[error.reason] }, requestId);
}

/** Express 404 fallthrough. */
export function notFound(_req: Request, _res: Response, next: NextFunction) {
  next(ERRORS.notFound());
}

/** Express terminal error handler. */
export function errorHandler(views: Views, log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let error = refusalOf(err);
    if (error) {
      log.info({ requestId: req.id, error: error.code, reason: error.reason, status: error.status, path: req.path }, 'request refused');
    } else if (isDatabaseBusy(err)) {
      error = ERRORS.databaseBusy();
      log.warn({ requestId: req.id, path: req.path }, 'database busy: request answered 503');
    } else {
      error = ERRORS.serverError();
      log.error({ err, requestId: req.id, path: req.path }, 'unexpected error');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(error.status);
    for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
    res.setHeader('Cache-Control', 'no-store');
    // A refusal with a page of its own is a browser page's (the upstream callback): always HTML.
    if (error.page || wantsHtml(req)) {
      res.type('html').send(pageOf(views, error, req.id));
    } else {
      res.json({ error: error.code, error_description: error.status < 500 || error.status === 503 ? error.description : `An unexpected error occurred (request ${req.id}).` });
    }
  };
}

/**
 * What oidc-provider's own error handler sends for an error that is not one of its OAuth errors:
 * a 4xx it did not raise itself keeps its status but gets our wording (its `error` would be the
 * thrown message), and a 500 says only that it was unexpected, with the request id (the error is
 * logged by the `server_error` event bridge, src/provider/events.ts).
 */
function providerOut(status: number, out: ErrorOut, error: Error, requestId: string | undefined): { out: ErrorOut; reason: string } {
  if (status >= 500) return { out: { error: 'server_error', error_description: `An unexpected error occurred (request ${requestId ?? 'unknown'}).` }, reason: 'unexpected' };
  if (error instanceof oidcErrors.OIDCProviderError) return { out, reason: error.name === 'SessionNotFound' ? 'session_not_found' : out.error };
  const refusal = refusalOf(error) ?? ERRORS.invalidRequest('The request is malformed.');
  return { out: { error: refusal.code, error_description: refusal.description }, reason: refusal.reason };
}

/** The database stayed locked (see `isDatabaseBusy`): 503 with Retry-After, on a page or as JSON. */
function busyPage(views: Views, ctx: KoaContextWithOIDC, requestId: string | undefined): void {
  const busy = ERRORS.databaseBusy();
  ctx.status = busy.status;
  for (const [name, value] of Object.entries(busy.headers)) ctx.set(name, value);
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  ctx.body = errorPageHtml(views, { status: busy.status, code: busy.code, description: busy.description }, requestId);
}

/** Marks a provider request whose error was a busy database (the server_error bridge, src/provider/events.ts). */
export function markDatabaseBusy(ctx: KoaContextWithOIDC, err: unknown): boolean {
  if (!isDatabaseBusy(err)) return false;
  (ctx.state as { databaseBusy?: boolean }).databaseBusy = true;
  return true;
}

/** oidc-provider's renderError hook: the same page, never a redirect (AUTHZ-02). */
export function providerErrorRenderer(views: Views) {
  return (ctx: KoaContextWithOIDC, given: ErrorOut, error: Error) => {
    const requestId = (ctx.req as { id?: string }).id;
    if (isDatabaseBusy(error)) return busyPage(views, ctx, requestId);
    const { out, reason } = providerOut(ctx.status, given, error, requestId);
    const page = PAGES[reason];
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = errorPageHtml(
      views,
      { status: ctx.status, code: out.error, description: ctx.status < 500 ? out.error_description : undefined, message: page?.message ?? MESSAGES[out.error], title: page?.title },
      requestId,
    );
  };
}

/** The shape of an OAuth error code (RFC 6749 §5.2); a thrown library message has spaces. */
const OAUTH_ERROR_CODE = /^[a-z][a-z_]*$/;

/**
 * Koa middleware for the provider (`provider.use`, src/provider/configuration.ts): its JSON error
 * bodies get the treatment of its pages (`providerOut`) — a 500 names only the request id, and a
 * 4xx whose `error` is not an OAuth code (a non-OAuth error's message) gets our wording.
 */
export function providerErrorBodies() {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    await next();
    if (ctx.status === 404 && (ctx.body === undefined || ctx.body === null)) {
      // No provider route answered (e.g. OPTIONS without a CORS preflight): JSON, not koa's text.
      ctx.body = { error: 'not_found', error_description: 'The requested page does not exist.' };
      ctx.status = 404;
      return;
    }
    const body = ctx.body as { error?: unknown } | undefined;
    if (ctx.status < 400 || !body || typeof body !== 'object' || Buffer.isBuffer(body) || typeof body.error !== 'string') return;
    if ((ctx.state as { databaseBusy?: boolean }).databaseBusy) {
      const busy = ERRORS.databaseBusy();
      ctx.status = busy.status;
      for (const [name, value] of Object.entries(busy.headers)) ctx.set(name, value);
      ctx.body = { error: busy.code, error_description: busy.description };
    } else if (ctx.status >= 500) {
      ctx.body = { error: 'server_error', error_description: `An unexpected error occurred (request ${(ctx.req as { id?: string }).id ?? 'unknown'}).` };
    } else if (!OAUTH_ERROR_CODE.test(body.error)) {
      ctx.body = { error: 'invalid_request', error_description: 'The request is malformed.' };
    }
  };
}
