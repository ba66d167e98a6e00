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
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { BodyRedactor, headerNameLeaks, redactHeaderValue, type Secrets } from './redact.js';
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
const DROPPED_RESPONSE_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'set-cookie',
  'www-authenticate',
  'strict-transport-security',
  'alt-svc',
]);

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
  | { kind: 'error'; status: 413 | 502 | 504; reason: 'body_too_large' | 'upstream_unreachable' | 'upstream_timeout' | 'upstream_encoding' | 'client_closed' };

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

/** R's body arrived in a coding other than identity (GW-13): the request to R is ended. */
class UnscannableEncodingError extends Error {}
/** The client hung up: the request to R is ended. */
class ClientClosedError extends Error {}

/** Codings of R's body that can be scanned as they are: none (GW-13). */
const IDENTITY = /^\s*(?:identity)?\s*$/i;
const TRANSFER_OK = /^\s*(?:chunked|identity)?\s*$/i;

/**
 * One request to R and its answer (undici's dispatch handler): the response headers are checked
 * and redacted, the body redacted chunk by chunk into the client's response.
 */
class ResponseHandler implements Dispatcher.DispatchHandler {
  /** waiting for R's headers; streaming R's body; discarding it (GW-14); refused (GW-13); ended */
  private state: 'waiting' | 'streaming' | 'discarding' | 'refused' | 'ended' = 'waiting';
  private controller: Dispatcher.DispatchController | undefined;
  private clientGone = false;
  private drainHooked = false;
  private redactor: BodyRedactor | undefined;
  private headerLeaks: string[] | undefined;
  /** the request body failed (ByteLimit) */
  bodyError: Error | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly secrets: Secrets,
    private readonly done: (outcome: ForwardOutcome) => void,
    private readonly leaked: (found: string[]) => void,
  ) {
    res.on('close', this.onClientClose);
  }

  /** The client's connection closed before R's answer was through: stop R. */
  private readonly onClientClose = () => {
    if (this.state !== 'waiting' && this.state !== 'streaming') return;
    if (this.controller) this.controller.abort(new ClientClosedError('the client closed the connection'));
    else this.clientGone = true; // still queued in the pool: aborted when it gets a connection
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new ClientClosedError('the client closed the connection'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200 || this.state !== 'waiting') return; // 1xx are not passed on
    if (statusCode === 401) {
      this.state = 'discarding';
      return this.done({ kind: 'upstream_unauthorized' });
    }
    // GW-13: a body that cannot be scanned is not passed on, not even its first byte.
    const contentEncoding = headers['content-encoding'];
    const transferEncoding = headers['transfer-encoding'];
    if ((contentEncoding !== undefined && !IDENTITY.test(String(contentEncoding))) || (transferEncoding !== undefined && !TRANSFER_OK.test(String(transferEncoding)))) {
      this.state = 'refused';
      this.done({ kind: 'error', status: 502, reason: 'upstream_encoding' });
      return controller.abort(new UnscannableEncodingError('R answered in a coding the gateway cannot scan'));
    }
    const scan = this.secrets.patterns.length > 0;
    const outHeaders: Record<string, string | string[]> = {};
    for (const name in headers) {
      let value = headers[name];
      if (value === undefined || DROPPED_RESPONSE_HEADERS.has(name) || name.startsWith('access-control-')) continue;
      if (scan) {
        // GW-13: a token in a header's name drops the header; in its value it is replaced.
        if (headerNameLeaks(name, this.secrets)) {
          (this.headerLeaks ??= []).push('header name');
          continue;
        }
        const clean = redactHeaderValue(value, this.secrets);
        if (clean !== value) {
          (this.headerLeaks ??= []).push(`header:${name.slice(0, 100)}`);
          value = clean;
        }
      }
      outHeaders[name] = value;
    }
    const sessionHeader = outHeaders['mcp-session-id'];
    const isStream = String(outHeaders['content-type'] ?? '').startsWith('text/event-stream');
    if (isStream) outHeaders['x-accel-buffering'] = 'no';
    this.res.writeHead(statusCode, outHeaders);
    if (isStream) this.res.flushHeaders();
    this.state = 'streaming';
    if (scan) this.redactor = new BodyRedactor(this.secrets);
    this.done({ kind: 'response', status: statusCode, sessionId: typeof sessionHeader === 'string' ? sessionHeader : undefined });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.state !== 'streaming') return; // discarding R's answer to a refused token (GW-14)
    // Ended by the server (shutdown ends open streams): a write now would raise an 'error' on the
    // response that nobody listens to; the 'close' that follows the end stops R.
    if (this.res.writableEnded) return;
    const out = this.redactor ? this.redactor.push(chunk) : chunk;
    if (out.length === 0 || this.res.write(out)) return;
    // Backpressure: R waits until the client has taken what it was sent.
    controller.pause();
    if (!this.drainHooked) {
      this.drainHooked = true;
      this.res.on('drain', () => this.controller?.resume());
    }
  }

  onResponseEnd(): void {
    if (this.state === 'streaming') {
      const tail = this.redactor?.end();
      this.state = 'ended';
      if (!this.res.writableEnded) this.res.end(tail && tail.length > 0 ? tail : undefined); // (or ended by the server, see above)
      this.report();
      return;
    }
    this.state = 'ended';
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    const state = this.state;
    this.state = 'ended';
    if (state === 'streaming') {
      this.res.destroy(err); // R's body failed midway: the client must not take it for complete
      this.report();
      return;
    }
    if (state !== 'waiting') return; // discarding or refused: the gateway answers
    if (this.bodyError instanceof BodyTooLargeError) return this.done({ kind: 'error', status: 413, reason: 'body_too_large' });
    if (this.res.destroyed || err instanceof ClientClosedError) return this.done({ kind: 'error', status: 502, reason: 'client_closed' });
    if (err instanceof undiciErrors.HeadersTimeoutError) return this.done({ kind: 'error', status: 504, reason: 'upstream_timeout' });
    this.done({ kind: 'error', status: 502, reason: 'upstream_unreachable' });
  }

  /** Once per response, when it is over: where a token was found, if anywhere (GW-13). */
  private report(): void {
    const found = this.redactor?.found ? [...(this.headerLeaks ?? []), 'body'] : this.headerLeaks;
    this.headerLeaks = undefined;
    this.redactor = undefined;
    if (found) this.leaked(found);
  }
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
   * `done` is called once: when R's status and headers are in and the response has started (the
   * body keeps streaming after it), or with the failure when no response could be started.
   * `leaked` is called at most once, when the response is over, if a token of `upstream` was
   * found in it (where: `header:<name>`, `header name`, `body`; never the value). `suffix` is
   * the path below the route with its query, checked by src/gateway/dispatch.ts.
   */
  function forward(req: IncomingMessage, res: ServerResponse, upstream: UpstreamCredential, suffix: string, done: (outcome: ForwardOutcome) => void, leaked: (found: string[]) => void): void {
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
    if (declared > options.maxBodyBytes) return done({ kind: 'error', status: 413, reason: 'body_too_large' });

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
