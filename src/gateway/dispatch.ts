/**
 * The front door of the HTTP server: requests for the gateway's paths go to the gateway (the hot
 * path, without express); everything else goes to the express app.
 * GW-12: for API routes the path below the prefix is appended to the configured target, so it
 * must not climb out of it, as R or anything in front of it may read the path: dot segments (also
 * `..;x` and `.;x`: Tomcat, Jetty and Spring drop a segment's `;` parameters before resolving it),
 * encoded slashes, backslashes, encoded dots and empty segments are refused (400) before anything
 * is forwarded — and so is a path that shows any of them once decoded again (`%252e%252e`,
 * `%25%32%65`, `..%3b`, `..%3f`, `..%23`, `..%00`: an R that decodes twice), up to MAX_DECODES
 * rounds. `/mcp` matches exactly (its query is kept).
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

// A dot segment ends at `/`, at `;` (its parameters), and — in a path decoded once more by R — at
// what ends a path there: `?`, `#`, NUL, or trailing whitespace some servers trim (review 2026-12-07).
const UNSAFE_PATH = /%2f|%5c|%2e|\\|\/\.\.?(?:[/;?#\0\s]|$)|\/\//i;
/** Decodings of a path that must all be safe; a path still encoded after them is refused. */
const MAX_DECODES = 4;

/** GW-12: whether R could resolve `path` outside the route's base (see the module comment). */
function unsafePath(path: string): boolean {
  let p = path;
  for (let round = 0; round < MAX_DECODES; round++) {
    if (UNSAFE_PATH.test(p)) return true;
    const decoded = p.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (decoded === p) return false;
    p = decoded;
  }
  return true;
}

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
        if (unsafePath(path)) return jsonRpcError(res, 400, 'Invalid path');
        return route.handle(req, res, path.slice(route.path.length) + query);
      }
    }
    fallback(req, res);
  };
}
