/**
 * A bounded read of a request body: the gateway reads every body whole before R is asked (GW-01,
 * src/flow/8-gateway.ts; the tool policy judges some, src/gateway/tool-policy.ts). At most `limit`
 * bytes are kept — a declared Content-Length above it is refused before a byte is read, a chunked
 * body as soon as it passes it (GATEWAY_MAX_BODY, 413). And at most GATEWAY_BODY_MEMORY bytes of
 * bodies are held at once across every request in flight (`BodyBudget`): each body may be
 * GATEWAY_MAX_BODY, but many at once — each from a client with a valid token, sent slowly — would
 * otherwise hold as much memory as there are connections. A body that would pass the budget, or
 * its user's share of it, is refused (503, Retry-After) and what it held given back at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KeyedTally } from '../http/keyed-tally.js';

/** Whether a request carries a body to forward: POST, PUT and PATCH always (an empty one is sent empty), others when they declare one. */
export function hasRequestBody(req: IncomingMessage): boolean {
  const method = req.method;
  return method === 'POST' || method === 'PUT' || method === 'PATCH' || Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** What one request's body holds of the budget: grown as its chunks arrive, given back once. */
export interface BodyHold {
  /** hold `bytes` more; false (nothing taken) when the budget or its owner's share cannot, or the response has closed */
  take(bytes: number): boolean;
  /** give back what was taken, now (a refused read) */
  give(): void;
  /**
   * The body goes with a request to R (src/gateway/forward.ts), whose client (undici) keeps it —
   * queued, while every connection to R is busy, for as long as that lasts: what it holds is then
   * given back once the returned function has been called (R's request is over) and the response
   * has closed, not at the first of them.
   */
  lend(): () => void;
}

/**
 * The bytes of request bodies the gateway holds at once, across all its routes
 * (GATEWAY_BODY_MEMORY), and what one owner — a user, the token's subject — may hold of them: a
 * quarter, and at least one GATEWAY_MAX_BODY, so that one user's stalled bodies cannot take it all.
 */
export class BodyBudget {
  private used = 0;
  private readonly byOwner = new KeyedTally();
  /** what one owner may hold at once */
  readonly share: number;

  constructor(
    readonly limit: number,
    maxBody: number,
  ) {
    this.share = Math.min(limit, Math.max(Math.floor(limit / 4), maxBody));
  }

  /** bytes held now */
  get held(): number {
    return this.used;
  }

  /** A hold for `owner`'s body of the request answered by `res`: what it holds is given back when `res` closes (or later: `lend`), if not before. */
  hold(res: ServerResponse, owner: string): BodyHold {
    let bytes = 0;
    let closed = res.destroyed; // gone already (on PostgreSQL the token check is a round trip): nothing may be taken
    let lent = 0;
    const give = () => {
      if (!bytes) return;
      this.used -= bytes;
      this.byOwner.remove(owner, bytes);
      bytes = 0;
    };
    res.once('close', () => {
      closed = true;
      if (!lent) give();
    });
    return {
      take: (n) => {
        if (closed || this.used + n > this.limit || this.byOwner.get(owner) + n > this.share) return false;
        this.used += n;
        this.byOwner.add(owner, n);
        bytes += n;
        return true;
      },
      give,
      lend: () => {
        lent += 1;
        let back = false;
        return () => {
          if (back) return;
          back = true;
          lent -= 1;
          if (closed && !lent) give();
        };
      },
    };
  }
}

export type BodyRead = { ok: true; body: Buffer } | { ok: false; reason: 'body_too_large' | 'body_memory_full' | 'client_closed' };

/** Read `req`'s body whole, at most `limit` bytes, each chunk taken from `hold` first: a refused read gives back what it took; a read body keeps it until `hold` is given back. */
export function readBody(req: IncomingMessage, limit: number, hold: BodyHold): Promise<BodyRead> {
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.resolve({ ok: false, reason: 'body_too_large' });
  if (req.destroyed) return Promise.resolve({ ok: false, reason: 'client_closed' }); // its 'close' has been and gone
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: BodyRead) => {
      req.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onGone);
      if (!result.ok) {
        chunks.length = 0;
        hold.give();
      }
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      const refused = size > limit ? 'body_too_large' : !hold.take(chunk.length) ? 'body_memory_full' : undefined;
      if (refused) {
        // Stop keeping it; what the client still sends is discarded.
        req.resume();
        return finish({ ok: false, reason: refused });
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, body: Buffer.concat(chunks, size) }); // a right-sized copy (a chunk may share a larger buffer); for a moment the body is there twice
    const onGone = () => finish({ ok: false, reason: 'client_closed' });
    req.on('data', onData).on('end', onEnd).on('error', onGone).on('close', onGone);
  });
}
