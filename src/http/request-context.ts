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
}
export const requestContext = new AsyncLocalStorage<RequestContext>();

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
    requestContext.run({ requestId: id, ip: req.ip }, next);
  };
}
