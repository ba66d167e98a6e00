/**
 * The front door of the HTTP server: requests for the gateway's paths go to the gateway (the hot
 * path, without express); everything else goes to the express app.
 * GW-12: for API routes the path below the prefix is appended to the configured target, so it
 * must not climb out of it: dot segments, encoded slashes, backslashes and encoded dots are
 * refused (400) before anything is forwarded. `/mcp` matches exactly (its query is kept).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { jsonRpcError } from './forward.js';

export interface DispatchRoute {
  /** absolute path of the route under the server root (base path included) */
  path: string;
  /** exact match only (the MCP endpoint) or prefix match (API routes) */
  exact: boolean;
  handle(req: IncomingMessage, res: ServerResponse, suffix: string): void;
}

const UNSAFE_PATH = /%2f|%5c|%2e|\\|\/\.\.?(?:\/|$)|\/\//i;

export function createDispatcher(routes: DispatchRoute[], fallback: (req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q === -1 ? raw : raw.slice(0, q);
    const query = q === -1 ? '' : raw.slice(q);
    for (const route of routes) {
      if (route.exact) {
        if (path === route.path) return route.handle(req, res, query);
        continue;
      }
      if (path === route.path || path.startsWith(`${route.path}/`)) {
        if (UNSAFE_PATH.test(path)) return jsonRpcError(res, 400, 'Invalid path');
        return route.handle(req, res, path.slice(route.path.length) + query);
      }
    }
    fallback(req, res);
  };
}
