/**
 * The streaming forwarder (undici Pool per upstream origin; DESIGN §2 step 8):
 * - GW-04/GW-11: only an allowlist of request headers is forwarded (content negotiation and the
 *   MCP headers `Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`, and — GW-17, MCP
 *   2026-07-28 Transports §Request Metadata — `Mcp-Method`, `Mcp-Name` and every
 *   `Mcp-Param-{Name}`, unchanged: "Intermediate servers that do not recognize an
 *   Mcp-Param-{Name} header MUST forward it"); the client's
 *   `Authorization`, cookies, `Origin`, forwarding and hop-by-hop headers never are. The
 *   upstream token goes in `Authorization: Bearer`.
 * - GW-12: the target origin and base path come from configuration only; the request path is
 *   appended below the configured base, after normalisation, and cannot climb out of it.
 * - The request body is the one the gateway read whole, within GATEWAY_MAX_BODY, before R is asked
 *   (GW-01, src/flow/8-gateway.ts); responses stream back as they arrive, so `text/event-stream`
 *   events are flushed one by one (no buffering).
 * - Response headers: hop-by-hop headers, `Set-Cookie` and CORS headers of R are dropped.
 * - GW-13: U's tokens never reach the client. Every header value of R's response and every body
 *   chunk go through the redactor (src/gateway/redact.ts, which decides what a token looks like
 *   and what replaces it); R is asked for `Accept-Encoding: identity` (the client's value is not
 *   forwarded), and a response in any other content or transfer coding — which could not be
 *   scanned — is refused with 502 before any of it is sent. A found token is reported once per
 *   response (`leaked`) and audited by the gateway.
 * - GW-14: R answering 401 to U's token ⇒ nothing of R's answer is sent (the gateway answers).
 * - R not reachable ⇒ 502; no response headers within GATEWAY_TIMEOUT ⇒ 504; both with a
 *   JSON-RPC-shaped error body and nothing of R's or U's details.
 * - R's body is written into the client's response as it arrives, honouring the response's
 *   backpressure (R is paused while it drains); it is ended when R's body ends, destroyed when
 *   R's body fails, and the request to R is aborted when the client hangs up (an SSE stream left
 *   open, say) — also while it still waits for R's headers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { ResponseHandler, type ForwardOutcome } from './response-handler.js';

export type { ForwardOutcome } from './response-handler.js';
import type { UpstreamCredential } from './upstream-token.js';

const FORWARDED_REQUEST_HEADERS = [
  'accept',
  'accept-language',
  'content-type',
  'content-length',
  'content-encoding',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'last-event-id',
  'user-agent',
  'if-none-match',
  'if-modified-since',
];
/** GW-17: the headers mirroring tool arguments (`x-mcp-header`), whatever their name. */
const MCP_PARAM_PREFIX = 'mcp-param-';
export interface ForwardOptions {
  timeoutMs: number;
  /** connections to R at once; default 256 (TEST SEAM: a test fills the pool with fewer) */
  connections?: number;
}

export function jsonRpcError(res: ServerResponse, status: number, message: string, code = -32000): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } });
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

/** GW-04/11/17: the allowlisted headers of the client's request, with U's token in place of the client's. */
function forwardedHeaders(req: IncomingMessage, upstream: UpstreamCredential): Record<string, string> {
  // GW-13: R is asked for a body it can be scanned in (identity); see ResponseHandler.
  const headers: Record<string, string> = { authorization: `Bearer ${upstream.accessToken}`, 'accept-encoding': 'identity' };
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  for (const name in req.headers) {
    const value = req.headers[name];
    if (name.startsWith(MCP_PARAM_PREFIX) && typeof value === 'string') headers[name] = value;
  }
  return headers;
}

export function createForwarder(target: URL, options: ForwardOptions) {
  const pool = new Pool(target.origin, {
    connections: options.connections ?? 256,
    pipelining: 1,
    headersTimeout: options.timeoutMs,
    bodyTimeout: 0, // SSE streams may be quiet for long; the client decides when to hang up
    keepAliveTimeout: 30_000,
  });
  const base = target.pathname.replace(/\/+$/, '');
  const pathFor = (suffix: string) => {
    const path = `${base}${suffix}`;
    return path.startsWith('/') ? path : `/${path}`;
  };

  /**
   * Sends the request to R with U's token and streams R's answer into `res`, redacted (GW-13).
   * `done` is called once: when R's status and headers are in, just before the response starts
   * (the body streams after it; when `done` returns a promise, only once that has settled — R's
   * answer is held back meanwhile), or with the failure when no response could be started.
   * `leaked` is called at most once, when the response is over, if a token of `upstream` was
   * found in it (where: `header:<name>`, `header name`, `body`; never the value). `suffix` is
   * the path below the route with its query, checked by src/gateway/dispatch.ts. `body` is the
   * request body the gateway read (src/gateway/read-body.ts), sent as is; undefined when the
   * request has none. `over` is called once, when the request to R is over (answered, failed or
   * aborted — queued in the pool too): from then on nothing here keeps `body`.
   */
  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    upstream: UpstreamCredential,
    suffix: string,
    done: (outcome: ForwardOutcome) => Promise<unknown> | void,
    leaked: (found: string[]) => void,
    body?: Buffer,
    over?: () => void,
  ): void {
    const headers = forwardedHeaders(req, upstream);
    if (body) headers['content-length'] = String(body.length);
    else delete headers['content-length'];
    const handler = new ResponseHandler(res, upstream.secrets, done, leaked, over);
    pool.dispatch({ method: req.method as Dispatcher.HttpMethod, path: pathFor(suffix), headers, body: body ?? null }, handler);
  }

  return { forward, close: () => pool.close() };
}

export type Forwarder = ReturnType<typeof createForwarder>;
