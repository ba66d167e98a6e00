/**
 * The streaming forwarder (undici Pool per upstream origin; DESIGN §2 step 8):
 * - GW-04/GW-11: only an allowlist of request headers is forwarded (content negotiation and the
 *   MCP headers `Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`); the client's
 *   `Authorization`, cookies, `Origin`, forwarding and hop-by-hop headers never are. The
 *   upstream token goes in `Authorization: Bearer`.
 * - GW-12: the target origin and base path come from configuration only; the request path is
 *   appended below the configured base, after normalisation, and cannot climb out of it.
 * - Request bodies stream through with a size limit (413); responses stream back as they arrive,
 *   so `text/event-stream` events are flushed one by one (no buffering).
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
import { Transform, type TransformCallback } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { BodyTooLargeError, ResponseHandler, type ForwardOutcome } from './response-handler.js';

export { BodyTooLargeError, type ForwardOutcome } from './response-handler.js';
import type { UpstreamCredential } from './upstream-token.js';

const FORWARDED_REQUEST_HEADERS = [
  'accept',
  'accept-language',
  'content-type',
  'content-length',
  'content-encoding',
  'mcp-session-id',
  'mcp-protocol-version',
  'last-event-id',
  'user-agent',
  'if-none-match',
  'if-modified-since',
];
class ByteLimit extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
    this.seen += chunk.length;
    if (this.seen > this.limit) done(new BodyTooLargeError(this.limit));
    else done(null, chunk);
  }
}

export interface ForwardOptions {
  timeoutMs: number;
  maxBodyBytes: number;
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

export function createForwarder(target: URL, options: ForwardOptions) {
  const pool = new Pool(target.origin, {
    connections: 256,
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
   * the path below the route with its query, checked by src/gateway/dispatch.ts.
   */
  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    upstream: UpstreamCredential,
    suffix: string,
    done: (outcome: ForwardOutcome) => Promise<unknown> | void,
    leaked: (found: string[]) => void,
  ): void {
    // GW-13: R is asked for a body it can be scanned in (identity); see ResponseHandler.
    const headers: Record<string, string> = { authorization: `Bearer ${upstream.accessToken}`, 'accept-encoding': 'identity' };
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const method = req.method as string;
    const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH' || Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) delete headers['content-length']; // a body without a length is sent chunked by undici
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > options.maxBodyBytes) return void done({ kind: 'error', status: 413, reason: 'body_too_large' });

    const handler = new ResponseHandler(res, upstream.secrets, done, leaked);
    // A declared length was checked above and Node's parser enforces it; only a body without
    // one (chunked) needs counting as it streams. A body stream that errors fails the request.
    const limiter = hasBody && req.headers['content-length'] === undefined ? req.pipe(new ByteLimit(options.maxBodyBytes)) : undefined;
    limiter?.on('error', (err) => {
      handler.bodyError = err;
    });
    pool.dispatch({ method: method as Dispatcher.HttpMethod, path: pathFor(suffix), headers, body: limiter ?? (hasBody ? req : null) }, handler);
  }

  return { forward, close: () => pool.close() };
}

export type Forwarder = ReturnType<typeof createForwarder>;
