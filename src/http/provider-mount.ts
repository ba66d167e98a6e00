/**
 * Hands requests to oidc-provider without letting it own the URL space (deps.md gotchas 8–10):
 * - only the provider's own endpoints reach it; everything else falls through to express, so our
 *   404 and error pages stay ours;
 * - Host and protocol are pinned to PUBLIC_URL before the provider sees the request, so every
 *   endpoint URL in metadata and every redirect derives from the one configured URL (DESIGN §1),
 *   whatever Host header a client or proxy sent;
 * - the client IP the provider sees is express's (TRUST_PROXY-aware);
 * - oidc-provider's own browser session cookie is never passed back to it (DESIGN §7): every
 *   authorization starts without a provider session, so nothing the provider remembers can
 *   shortcut P's consent page or clash with the account of a later sign-in. P's own session
 *   (browser_sessions) is the only one that carries over.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { PublicUrls } from '../config/urls.js';
import { ERRORS } from '../errors/oauth-error.js';

export type ProviderCallback = (req: IncomingMessage, res: ServerResponse) => void;

export function pinToPublicUrl(req: Request, urls: PublicUrls): void {
  const origin = new URL(urls.origin);
  req.headers['x-forwarded-host'] = origin.host;
  req.headers['x-forwarded-proto'] = origin.protocol.slice(0, -1);
  req.headers['x-forwarded-for'] = req.ip ?? req.socket.remoteAddress ?? '';
  delete req.headers.forwarded;
  if (req.headers.cookie) {
    req.headers.cookie = req.headers.cookie
      .split(/;\s*/)
      .filter((c) => !/^_session(\.legacy)?(\.sig)?=/.test(c))
      .join('; ');
  }
}

/** The provider's mounted documents (metadata, JWKS) are read-only; OPTIONS is its CORS preflight. */
const DOCUMENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Dispatch `paths` (exact, or prefix when ending in '/') to the provider; express `next()` for
 * anything else. Mount it inside the base-path router. Other methods than GET, HEAD and OPTIONS
 * get our 405 (DESIGN §9), not the provider's plain-text 404.
 */
export function providerMount(callback: ProviderCallback, urls: PublicUrls, paths: string[]) {
  const exact = new Set(paths.filter((p) => !p.endsWith('/')));
  const prefixes = paths.filter((p) => p.endsWith('/'));
  return (req: Request, res: Response, next: NextFunction) => {
    const path = req.path;
    if (!exact.has(path) && !prefixes.some((p) => path.startsWith(p))) return next();
    if (!DOCUMENT_METHODS.has(req.method)) return next(ERRORS.methodNotAllowed('GET, HEAD'));
    pinToPublicUrl(req, urls);
    callback(req, res);
  };
}

/** Serve one provider document under another path (RFC 8414 path insertion, gotcha 9). */
export function providerAlias(callback: ProviderCallback, urls: PublicUrls, target: string) {
  return (req: Request, res: Response) => {
    pinToPublicUrl(req, urls);
    req.url = target;
    req.originalUrl = urls.path(target);
    callback(req, res);
  };
}
