/**
 * First middleware: a request id (X-Request-Id on every response, printed on error pages, in
 * every log line and audit row of the request), the async request context, and one access-log
 * line per request with the path only (queries carry codes and states, SEC-02).
 */
import { newRequestId } from './request-id.js';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { AsyncLocalStorage } from 'node:async_hooks';

declare module 'http' {
  interface IncomingMessage {
    /** request id assigned by requestContextMiddleware */
    id?: string;
  }
}

/** Per-request context (request id, client IP) for records written deep inside a flow. */
export interface RequestContext {
  requestId: string;
  ip: string | undefined;
  /** writes started by code that cannot await them (oidc-provider's events), awaited before the response */
  commits?: Promise<unknown>[];
  /** the last write started by `inOrder` in this request, settled (never rejects) */
  lastInOrder?: Promise<unknown>;
}
export const requestContext = new AsyncLocalStorage<RequestContext>();

/**
 * A write the current request's response must wait for, started where it cannot be awaited
 * (an oidc-provider event handler: the provider does not await its listeners). The provider's
 * responses wait for every such write (`commitsSettled`, src/provider/configuration.ts), so a
 * decision is committed before it is answered (DESIGN §3). Outside a request it only runs.
 */
export function beforeResponse(work: Promise<unknown>): void {
  requestContext.getStore()?.commits?.push(work);
}

/**
 * Run `work` once every write started before it by `inOrder` in this request has settled (at once
 * outside a request). oidc-provider's event listeners write through it: two events of one request
 * (a refused refresh token and the grant its reuse revokes) share the request's transaction on
 * /token (src/provider/request-transaction.ts), and their audit appends must not interleave — each
 * reads the chain head and inserts after it, and inside one transaction nothing else orders them.
 */
export function inOrder<T>(work: () => Promise<T>): Promise<T> {
  const ctx = requestContext.getStore();
  if (!ctx) return work();
  const next = (ctx.lastInOrder ?? Promise.resolve()).then(work);
  ctx.lastInOrder = next.catch(() => undefined);
  return next;
}

/** Resolves once every write noted with `beforeResponse` in this request has committed; rejects if one failed. */
export async function commitsSettled(): Promise<void> {
  const commits = requestContext.getStore()?.commits;
  // Every write settles before this resolves or rejects, those noted meanwhile too (a rejection must
  // not leave writes running after a rollback); then the first failure, if any.
  let failure: PromiseRejectedResult | undefined;
  while (commits?.length) {
    for (const outcome of await Promise.allSettled(commits.splice(0))) if (outcome.status === 'rejected') failure ??= outcome;
  }
  if (failure) throw failure.reason;
}

/** `next()`, then `commitsSettled()` — also when next() threw (no write may outlive the request's transaction); next's error first. */
export async function nextThenCommits(next: () => Promise<unknown>): Promise<void> {
  try {
    await next();
  } catch (err) {
    await commitsSettled().catch(() => undefined);
    throw err;
  }
  await commitsSettled();
}

export function requestContextMiddleware(log: Logger, onFinish?: (req: Request, res: Response, ms: number) => void) {
  return (req: Request, res: Response, next: NextFunction) => {
    const id = newRequestId();
    req.id = id;
    res.setHeader('X-Request-Id', id);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      onFinish?.(req, res, ms);
      log.debug({ requestId: id, method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
    });
    requestContext.run({ requestId: id, ip: req.ip, commits: [] }, next);
  };
}
