/**
 * A bounded read of a request body: the gateway reads every body whole before R is asked (GW-01,
 * src/flow/8-gateway.ts; the tool policy judges some, src/gateway/tool-policy.ts). At most `limit`
 * bytes are kept — a declared Content-Length above it is refused before a byte is read, a chunked
 * body as soon as it passes it (GATEWAY_MAX_BODY, 413).
 */
import type { IncomingMessage } from 'node:http';

/** Whether a request carries a body to forward: POST, PUT and PATCH always (an empty one is sent empty), others when they declare one. */
export function hasRequestBody(req: IncomingMessage): boolean {
  const method = req.method;
  return method === 'POST' || method === 'PUT' || method === 'PATCH' || Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

export type BodyRead = { ok: true; body: Buffer } | { ok: false; reason: 'body_too_large' | 'client_closed' };

export function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.resolve({ ok: false, reason: 'body_too_large' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: BodyRead) => {
      req.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onGone);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop keeping it; what the client still sends is discarded.
        req.resume();
        return finish({ ok: false, reason: 'body_too_large' });
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, body: Buffer.concat(chunks, size) });
    const onGone = () => finish({ ok: false, reason: 'client_closed' });
    req.on('data', onData).on('end', onEnd).on('error', onGone).on('close', onGone);
  });
}
