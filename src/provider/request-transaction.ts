/**
 * The provider's responses wait for their writes, and the token, registration and revocation
 * endpoints make all of a request's writes ONE database transaction (DESIGN §3; issue 13):
 * - `POST /token`: the code or refresh token consumed, the new access and refresh tokens, the
 *   client's last use and the `token.issued` audit row commit together or not at all. A rotation
 *   whose audit row cannot be written (the database went away mid-request) is rolled back and
 *   answered 503, so the client's retry with the same refresh token works instead of being
 *   refused as reuse and ending the grant (RT-01/02; found by test/faults/postgres-restart.pg.test.ts).
 * - `POST /register`: the client, its provenance (clients_meta) and `registration.accepted` —
 *   never a client row without its provenance and audit row (REG-*, AUD-*).
 * - `POST /revoke`: the revocation and its audit rows.
 * Other provider requests (metadata, JWKS, /authorize) keep one transaction per write: the
 * authorization endpoint's approval is already one transaction of its own (src/consent/record.ts).
 *
 * Only oidc-provider's own handling runs inside the transaction: the preflights before it (rate
 * limits, body parsing, the CIMD document fetch) run outside, and nothing inside waits for the
 * network — so on SQLite the write lock is held only for CPU work, and on PostgreSQL one pooled
 * connection per request. Effects outside the database wait for the commit (Sql.afterCommit: the
 * upstream revocation after a refresh-token reuse). A response the provider answered with a 5xx
 * is rolled back too: nothing of a failed request is kept.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';
import { nextThenCommits } from '../http/request-context.js';
import { markDatabaseBusy } from '../errors/render.js';

type Next = () => Promise<unknown>;

/**
 * The path as routed: express and oidc-provider's router both match case-insensitively and take a
 * trailing slash, so `/TOKEN` and `/token/` reach the token endpoint too (found by review: they
 * ran without the transaction).
 */
export function routeOf(path: string): string {
  const lower = path.toLowerCase();
  return lower.length > 1 && lower.endsWith('/') ? lower.replace(/\/+$/, '') : lower;
}

/** A provider answer of 5xx: its writes roll back, the answer stands. */
class FailedResponse extends Error {
  constructor() {
    super('the provider answered with a server error: its writes roll back');
    this.name = 'FailedResponse';
  }
}

/**
 * The provider middleware: `POST` to one of `atomicPaths` runs as one transaction (with the
 * writes its event listeners started, `beforeResponse`); every response waits for those writes.
 * `onBegin` runs first inside the transaction (to send reads ahead).
 * A failed commit answers 500 — 503 with Retry-After when the database is unavailable or busy.
 */
export function requestTransaction(atomicPaths: readonly string[], transaction: <T>(fn: () => Promise<T>) => Promise<T>, onBegin?: (ctx: KoaContextWithOIDC) => void) {
  const atomic = new Set(atomicPaths);
  return async (ctx: KoaContextWithOIDC, next: Next): Promise<void> => {
    try {
      if (ctx.method === 'POST' && atomic.has(routeOf(ctx.path))) {
        await transaction(async () => {
          onBegin?.(ctx); // reads sent ahead, in the transaction (OidcModelStore.readAhead)
          await nextThenCommits(next);
          if (ctx.status >= 500) throw new FailedResponse();
        });
      } else {
        await nextThenCommits(next);
      }
    } catch (err) {
      if (err instanceof FailedResponse) return;
      ctx.remove('Location');
      ctx.status = 500;
      ctx.body = { error: 'server_error' }; // rewritten by providerErrorBodies; the listener logged the cause
      // The database unreachable or busy (PostgreSQL restarting, issue 13 §3): 503 with Retry-After, not a 500.
      markDatabaseBusy(ctx, err);
    }
  };
}
