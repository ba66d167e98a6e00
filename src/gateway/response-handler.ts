/**
 * R's answer on its way to the client (undici's dispatch handler for src/gateway/forward.ts, whose
 * module comment lists the rules): R's status and headers are checked and redacted (GW-13: a body
 * in a coding that cannot be scanned is refused, a token in a header is dropped or replaced),
 * `done` is told, and the body is redacted chunk by chunk into the client's response, honouring
 * its backpressure. When `done` returns a promise (the gateway binding a new MCP session id,
 * GW-09), nothing of R's answer reaches the client until it has settled: R is paused meanwhile
 * and what already arrived is held.
 */
import type { ServerResponse } from 'node:http';
import { errors as undiciErrors, type Dispatcher } from 'undici';
import { BodyRedactor, headerNameLeaks, redactHeaderValue, type Secrets } from './redact.js';

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

export type ForwardOutcome =
  | { kind: 'response'; status: number; sessionId: string | undefined }
  /** R answered 401 to U's token; nothing was sent to the client yet (GW-14) */
  | { kind: 'upstream_unauthorized' }
  | { kind: 'error'; status: 502 | 504; reason: 'upstream_unreachable' | 'upstream_timeout' | 'upstream_encoding' | 'client_closed' };

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
export class ResponseHandler implements Dispatcher.DispatchHandler {
  /** waiting for R's headers; holding R's answer until `done` settles; streaming R's body; discarding it (GW-14); refused (GW-13); ended */
  private state: 'waiting' | 'holding' | 'streaming' | 'discarding' | 'refused' | 'ended' = 'waiting';
  private controller: Dispatcher.DispatchController | undefined;
  private clientGone = false;
  private drainHooked = false;
  private redactor: BodyRedactor | undefined;
  private headerLeaks: string[] | undefined;
  /** what R sent while its answer was held: body chunks, then its end or failure */
  private held: { chunks: Buffer[]; end: boolean; error: Error | undefined } | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly secrets: Secrets,
    private readonly done: (outcome: ForwardOutcome) => Promise<unknown> | void,
    private readonly leaked: (found: string[]) => void,
    /** told once, when undici is done with the request (its end or its failure): src/gateway/forward.ts */
    private over?: () => void,
  ) {
    res.on('close', this.onClientClose);
    // Gone already (while the gateway waited for a database read, on PostgreSQL): R is not asked.
    if (res.destroyed) this.clientGone = true;
  }

  /** The client's connection closed before R's answer was through: stop R — also an answer being discarded (GW-14's 401, or one the gateway answered itself), which R could keep sending for ever, holding its connection and the request's body (review 2026-12-06). */
  private readonly onClientClose = () => {
    if (this.state === 'ended' || this.state === 'refused') return;
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
      void this.done({ kind: 'upstream_unauthorized' });
      return;
    }
    // GW-13: a body that cannot be scanned is not passed on, not even its first byte.
    const contentEncoding = headers['content-encoding'];
    const transferEncoding = headers['transfer-encoding'];
    if ((contentEncoding !== undefined && !IDENTITY.test(String(contentEncoding))) || (transferEncoding !== undefined && !TRANSFER_OK.test(String(transferEncoding)))) {
      this.state = 'refused';
      void this.done({ kind: 'error', status: 502, reason: 'upstream_encoding' });
      return controller.abort(new UnscannableEncodingError('R answered in a coding the gateway cannot scan'));
    }
    const scan = this.secrets.patterns.length > 0;
    const outHeaders = this.cleanHeaders(headers, scan);
    const sessionHeader = outHeaders['mcp-session-id'];
    const hold = this.done({ kind: 'response', status: statusCode, sessionId: typeof sessionHeader === 'string' ? sessionHeader : undefined });
    if (!(hold instanceof Promise)) return this.begin(statusCode, outHeaders, scan);
    this.state = 'holding';
    this.held = { chunks: [], end: false, error: undefined };
    controller.pause();
    const begin = () => this.begin(statusCode, outHeaders, scan);
    hold.then(begin, begin);
  }

  /** R's headers as the client may see them: hop-by-hop, cookies and CORS dropped; U's tokens out (GW-13). */
  private cleanHeaders(headers: Record<string, string | string[] | undefined>, scan: boolean): Record<string, string | string[]> {
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
    return outHeaders;
  }

  /** The response starts: headers out, then what was held back (if anything), then R resumes. */
  private begin(statusCode: number, outHeaders: Record<string, string | string[]>, scan: boolean): void {
    const held = this.held;
    this.held = undefined;
    // The gateway answered itself (a failure), or the client left while R's answer was held.
    if (this.res.headersSent || this.res.destroyed || (this.state !== 'waiting' && this.state !== 'holding')) {
      this.state = this.state === 'ended' ? 'ended' : 'discarding';
      return;
    }
    const isStream = String(outHeaders['content-type'] ?? '').startsWith('text/event-stream');
    if (isStream) outHeaders['x-accel-buffering'] = 'no';
    this.res.writeHead(statusCode, outHeaders);
    if (isStream) this.res.flushHeaders();
    this.state = 'streaming';
    if (scan) this.redactor = new BodyRedactor(this.secrets);
    if (!held) return;
    for (const chunk of held.chunks) this.write(chunk);
    if (held.error) return this.onResponseError(this.controller as Dispatcher.DispatchController, held.error);
    if (held.end) return this.onResponseEnd();
    this.controller?.resume();
  }

  /** One chunk of R's body to the client, redacted; false when the client's buffer is full. */
  private write(chunk: Buffer): boolean {
    // Ended by the server (shutdown ends open streams): a write now would raise an 'error' on the
    // response that nobody listens to; the 'close' that follows the end stops R.
    if (this.res.writableEnded) return true;
    const out = this.redactor ? this.redactor.push(chunk) : chunk;
    return out.length === 0 || this.res.write(out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.state === 'holding') {
      this.held?.chunks.push(chunk);
      return;
    }
    if (this.state !== 'streaming') return; // discarding R's answer to a refused token (GW-14)
    if (this.write(chunk)) return;
    // Backpressure: R waits until the client has taken what it was sent.
    controller.pause();
    if (!this.drainHooked) {
      this.drainHooked = true;
      this.res.on('drain', () => this.controller?.resume());
    }
  }

  /** undici is done with the request (called again when a held end or failure is replayed: once only) */
  private finished(): void {
    const over = this.over;
    this.over = undefined;
    over?.();
  }

  onResponseEnd(): void {
    this.finished();
    if (this.state === 'holding') {
      if (this.held) this.held.end = true;
      return;
    }
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
    this.finished();
    const state = this.state;
    if (state === 'holding' && this.held) {
      this.held.error = err;
      return;
    }
    this.state = 'ended';
    if (state === 'streaming' || state === 'holding') {
      this.res.destroy(err); // R's body failed midway: the client must not take it for complete
      this.report();
      return;
    }
    if (state !== 'waiting') return; // discarding or refused: the gateway answers
    if (this.res.destroyed || err instanceof ClientClosedError) return void this.done({ kind: 'error', status: 502, reason: 'client_closed' });
    if (err instanceof undiciErrors.HeadersTimeoutError) return void this.done({ kind: 'error', status: 504, reason: 'upstream_timeout' });
    void this.done({ kind: 'error', status: 502, reason: 'upstream_unreachable' });
  }

  /** Once per response, when it is over: where a token was found, if anywhere (GW-13). */
  private report(): void {
    const found = this.redactor?.found ? [...(this.headerLeaks ?? []), 'body'] : this.headerLeaks;
    this.headerLeaks = undefined;
    this.redactor = undefined;
    if (found) this.leaked(found);
  }
}
