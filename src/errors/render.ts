/**
 * The only place that writes an error to a response (style C3). OAuthErrors go out with their
 * RFC code and description (JSON for API clients, P's error page for browsers); anything else is
 * logged with its stack and answered `server_error` with the request id and a generic message.
 */
import type { NextFunction, Request, Response } from 'express';
import type { ErrorOut, KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Views } from '../views/render.js';
import { ERRORS, OAuthError } from './oauth-error.js';

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
  session_not_found: 'This sign-in session has expired or was already used. Start again from your application.',
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
  return req.accepts(['json', 'html']) === 'html';
}

/** Express 404 fallthrough. */
export function notFound(_req: Request, _res: Response, next: NextFunction) {
  next(ERRORS.notFound());
}

/** Express terminal error handler. */
export function errorHandler(views: Views, log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    let error: OAuthError;
    if (err instanceof OAuthError) {
      error = err;
      log.info({ requestId: req.id, code: error.code, reason: error.reason, path: req.path }, 'request refused');
    } else if ((err as { type?: string }).type === 'entity.too.large') {
      error = ERRORS.bodyTooLarge((err as { limit?: number }).limit ?? 0);
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
    if (wantsHtml(req)) {
      res.type('html').send(errorPageHtml(views, { status: error.status, code: error.code, description: error.status < 500 ? error.description : undefined }, req.id));
    } else {
      res.json({ error: error.code, error_description: error.status < 500 ? error.description : `An unexpected error occurred (request ${req.id}).` });
    }
  };
}

/** oidc-provider's renderError hook: the same page, never a redirect (AUTHZ-02). */
export function providerErrorRenderer(views: Views) {
  return (ctx: KoaContextWithOIDC, out: ErrorOut, error: Error) => {
    const code = (error as { name?: string }).name === 'SessionNotFound' ? 'session_not_found' : out.error;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = errorPageHtml(
      views,
      { status: ctx.status, code: out.error, description: out.error_description, message: MESSAGES[code], title: code === 'session_not_found' ? 'This sign-in has expired' : undefined },
      (ctx.req as { id?: string }).id,
    );
  };
}
