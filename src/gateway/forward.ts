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
 * - R not reachable ⇒ 502; no response headers within GATEWAY_TIMEOUT ⇒ 504; both with a
 *   JSON-RPC-shaped error body and nothing of R's or U's details.
 */
import { Transform, Writable, type TransformCallback } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';

const FORWARDED_REQUEST_HEADERS = ['accept', 'accept-encoding', 'accept-language', 'content-type', 'content-length', 'content-encoding', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id', 'user-agent', 'if-none-match', 'if-modified-since'];
const DROPPED_RESPONSE_HEADERS = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'set-cookie', 'www-authenticate', 'strict-transport-security', 'alt-svc']);

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`);
  }
}

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

export type ForwardOutcome =
  | { kind: 'response'; status: number; sessionId: string | undefined }
  /** R answered 401 to U's token; nothing was sent to the client yet (GW-14) */
  | { kind: 'upstream_unauthorized' }
  | { kind: 'error'; status: 413 | 502 | 504; reason: 'body_too_large' | 'upstream_unreachable' | 'upstream_timeout' | 'client_closed' };

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

/** Where R's body goes when R refused U's token: nowhere (the client gets P's own 401). */
const discard = () =>
  new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });

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
   * Sends the request to R and streams R's answer into `res`. `done` is called once: when R's
   * status and headers are in and the response has started (the body keeps streaming after it),
   * or with the failure when no response could be started. `suffix` is the path below the route
   * with its query, checked by src/gateway/dispatch.ts.
   *
   * undici's `stream()` writes R's body chunks straight into `res` (no intermediate Readable),
   * honours `res`'s backpressure, ends `res` when R's body ends, destroys it when R's body fails,
   * and aborts the request to R when the client hangs up (an SSE stream left open, say).
   */
  function forward(req: IncomingMessage, res: ServerResponse, upstreamToken: string, suffix: string, done: (outcome: ForwardOutcome) => void): void {
    const headers: Record<string, string> = { authorization: `Bearer ${upstreamToken}` };
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const method = req.method as string;
    const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH' || Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) delete headers['content-length']; // a body without a length is sent chunked by undici
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > options.maxBodyBytes) return done({ kind: 'error', status: 413, reason: 'body_too_large' });

    // A declared length was checked above and Node's parser enforces it; only a body without
    // one (chunked) needs counting as it streams. A body stream that errors fails the request.
    const limiter = hasBody && req.headers['content-length'] === undefined ? req.pipe(new ByteLimit(options.maxBodyBytes)) : undefined;
    let bodyError: Error | undefined;
    limiter?.on('error', (err) => {
      bodyError = err;
    });

    let started = false;
    pool.stream(
      { method: method as Dispatcher.HttpMethod, path: pathFor(suffix), headers, body: limiter ?? (hasBody ? req : null) },
      ({ statusCode, headers: upstreamHeaders }) => {
        started = true;
        if (statusCode === 401) {
          done({ kind: 'upstream_unauthorized' });
          return discard();
        }
        const outHeaders: Record<string, string | string[]> = {};
        for (const name in upstreamHeaders) {
          const value = upstreamHeaders[name];
          if (value === undefined || DROPPED_RESPONSE_HEADERS.has(name) || name.startsWith('access-control-')) continue;
          outHeaders[name] = value;
        }
        const sessionHeader = upstreamHeaders['mcp-session-id'];
        const isStream = String(upstreamHeaders['content-type'] ?? '').startsWith('text/event-stream');
        if (isStream) outHeaders['x-accel-buffering'] = 'no';
        res.writeHead(statusCode, outHeaders);
        if (isStream) res.flushHeaders();
        done({ kind: 'response', status: statusCode, sessionId: typeof sessionHeader === 'string' ? sessionHeader : undefined });
        return res;
      },
      (err) => {
        if (!err || started) return; // once started, undici has ended or destroyed `res` itself
        if (bodyError instanceof BodyTooLargeError) return done({ kind: 'error', status: 413, reason: 'body_too_large' });
        if (res.destroyed) return done({ kind: 'error', status: 502, reason: 'client_closed' });
        if (err instanceof undiciErrors.HeadersTimeoutError) return done({ kind: 'error', status: 504, reason: 'upstream_timeout' });
        done({ kind: 'error', status: 502, reason: 'upstream_unreachable' });
      },
    );
  }

  return { forward, close: () => pool.close() };
}

export type Forwarder = ReturnType<typeof createForwarder>;
