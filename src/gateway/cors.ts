/**
 * CORS for the gateway's routes (src/flow/8-gateway.ts): an allowed browser origin (GW-10,
 * ALLOWED_ORIGINS; a foreign one never gets here) may read the response and the MCP headers, its
 * preflight is answered here, and a method the route does not serve is 405.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { jsonRpcError } from './forward.js';

// MCP 2026-07-28 adds Mcp-Method and Mcp-Name (required of clients of that revision) and the
// Mcp-Param-* headers R's tool schemas declare: a browser client must be allowed to send them.
const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name';
// A header name is an RFC 9110 token (§5.1, tchar), lowercased here.
const MCP_PARAM = /^mcp-param-[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** The headers the preflight allows: the fixed list, and the Mcp-Param-* names it asks for. */
function allowedHeaders(req: IncomingMessage): string {
  const asked = req.headers['access-control-request-headers'];
  if (typeof asked !== 'string') return CORS_ALLOW_HEADERS;
  const params = asked
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => MCP_PARAM.test(h));
  return params.length ? `${CORS_ALLOW_HEADERS}, ${[...new Set(params)].join(', ')}` : CORS_ALLOW_HEADERS;
}

/** CORS headers for an allowed origin, the preflight and the method; true when the request was answered here. */
export function answerPreflight(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined) {
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Vary', 'Origin');
    res.setHeader('Access-Control-Expose-Headers', 'mcp-session-id, www-authenticate');
  }
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { 'Access-Control-Allow-Methods': methods.join(', '), 'Access-Control-Allow-Headers': allowedHeaders(req), 'Access-Control-Max-Age': '600' });
    res.end();
    return true;
  }
  if (!methods.includes(req.method as string)) {
    res.setHeader('Allow', methods.join(', '));
    jsonRpcError(res, 405, 'Method not allowed');
    return true;
  }
  return false;
}
