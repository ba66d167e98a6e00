/**
 * What Node's HTTP server refuses on its own — a malformed, too large or too slow request — and how
 * it is answered.
 *
 * How long a client may take to send one whole request, headers and body (REQUEST_TIMEOUT):
 * Node enforces it (`requestTimeout`): every `connectionsCheckingInterval` it refuses each request
 * still arriving past the limit — answered 408 below (RFC 9110 §15.5.9) — and closes its
 * connection. That bounds how long a stalled body holds its bytes of GATEWAY_BODY_MEMORY
 * (src/gateway/read-body.ts: given back when its client is gone). A request that has fully arrived
 * is not timed: a long answer, such as the gateway's server-sent event stream, is not cut by it.
 */
import { STATUS_CODES, type ServerOptions } from 'node:http';
import type { Socket } from 'node:net';

/** Node's default headersTimeout; it may not exceed requestTimeout. */
const HEADERS_TIMEOUT_MS = 60_000;
/** The check runs at a quarter of the limit, at most every 5 s: a request is cut within 1.25 × the limit (60 s: 60–65 s). */
const MAX_CHECK_INTERVAL_MS = 5_000;
const MIN_CHECK_INTERVAL_MS = 250;

export function requestDeadlines(timeoutMs: number): Pick<ServerOptions, 'requestTimeout' | 'headersTimeout' | 'connectionsCheckingInterval'> {
  return {
    requestTimeout: timeoutMs,
    headersTimeout: Math.min(HEADERS_TIMEOUT_MS, timeoutMs),
    connectionsCheckingInterval: Math.min(MAX_CHECK_INTERVAL_MS, Math.max(MIN_CHECK_INTERVAL_MS, Math.floor(timeoutMs / 4))),
  };
}

const CLIENT_ERROR_TEXT: Record<number, string> = {
  400: 'The request is malformed.',
  408: 'The request took too long to arrive.',
  413: 'The request is too large.',
  431: 'The request headers are too large.',
};

/**
 * Node's HTTP server refuses a request — a malformed request line, header or chunk, headers or URL
 * over 16 KiB, before any handler sees it; a request still arriving at REQUEST_TIMEOUT, possibly
 * while a handler reads its body: answer with a JSON 4xx like every other refusal (DESIGN §9),
 * instead of Node's bare 400 without a content type, then close the connection both ways. Only the
 * request being received is answered so: when a response to an earlier request on the connection
 * is still owed or under way, the connection is dropped instead (the 408 would be read as that
 * response). Attached to every server that serves `runtime.handler`.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const s = socket as Socket & { _httpMessage?: { headersSent?: boolean; req?: unknown }; parser?: { incoming?: unknown } | null };
  const inFlight = s._httpMessage;
  // Only the request being received may be answered here: a response still owed to an earlier request on this connection would be read as its answer.
  const answerable = !inFlight || (!inFlight.headersSent && inFlight.req === s.parser?.incoming);
  if (err.code === 'ECONNRESET' || !socket.writable || !answerable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' ? 413 : 400;
  const body = JSON.stringify({ error: 'invalid_request', error_description: CLIENT_ERROR_TEXT[status] });
  // Closed both ways once written (the server's sockets are half-open: end() alone leaves the request, and what it holds, open while the client keeps its side).
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
  socket.setTimeout(5_000, () => socket.destroy()); // a client that reads nothing
}
