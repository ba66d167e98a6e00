/**
 * GW-01 for answers still going out (the one module that decides when a forwarded request in
 * flight is ended; review of 2026-12-06): a request is checked when it arrives, but R's answer can
 * last long after — a tool's progress streamed as server-sent events, the GET stream of server
 * messages, an R slow to answer. Without this, a consent revoked or a client disabled meanwhile
 * kept such an answer flowing to the client for as long as R kept it open (DESIGN §8: a
 * revocation ends the client's access on every process).
 *
 * Every forwarded request is registered here until its response closes (GET streams are also
 * what shutdown ends, `endStreams`). When the database
 * generation (src/gateway/cache.ts) has moved since a response's token was last checked — a
 * change to a token, consent, upstream token or a client's disabled flag, made by any process —
 * its token is checked again (src/gateway/token-check.ts, the same decision as a new request's),
 * and so it is once the token or its consent has expired (the decision's `until`). A response
 * whose token no longer passes — revoked (with its consent, or alone), its consent expired or
 * revoked, its client disabled or no longer accepted, its own expiry passed — is destroyed, which
 * aborts the request to R (src/gateway/response-handler.ts), and `cut` reports why (audited by
 * the gateway); a client that still holds a valid token reconnects with it.
 *
 * The generation is read every STREAM_RECHECK_MS while any response is open (a change made by
 * another replica or the CLI, and an expiry, show there within that bound), and at once after a
 * revocation made in this process (`revoked`: a grant's cascade, src/consent/revocation.ts, or an
 * access token alone at /revoke). Nothing is read while no response is open. While the database
 * cannot be read, open responses are kept (new requests are refused meanwhile) and the next
 * check tries again — for UNVERIFIED_MAX_MS at most: a response whose token has not been seen to
 * pass for that long is cut (`unverified`), since a revocation committed elsewhere meanwhile (this
 * replica cut off from a database the others still reach) would otherwise never end it.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Maybe } from '../db/sql.js';
import type { TokenCheck, TokenRefusal } from './token-check.js';
import type { Exchange } from './exchange.js';
import { failureLevel } from '../errors/database-unavailable.js';

/** How often the generation is read while responses are open: the bound on ending one after a change made by another process. */
export const STREAM_RECHECK_MS = 1_000;

/**
 * How long an open response outlives the last time its token was seen to pass — a generation
 * read that found nothing changed, or a check that passed — while the database cannot be read:
 * then it is cut (reason `unverified`; review 2026-12-07: such answers were kept for as long as
 * the database stayed away). Long enough for a database restart or a short failover to go
 * unnoticed by the clients; a client cut reconnects and is answered 503 until the database is back.
 */
export const UNVERIFIED_MAX_MS = 30_000;

/** Why a response was ended: its token's refusal, or no check possible for UNVERIFIED_MAX_MS. */
export type CutReason = TokenRefusal['reason'] | 'unverified';

export interface OpenResponse {
  res: ServerResponse;
  /** a GET: R's server-sent stream, which shutdown ends (`endStreams`) rather than wait on */
  stream: boolean;
  /** the request's Authorization header, its route's resource and scope: what its token was checked with */
  authorization: string | undefined;
  resource: string;
  requiredScope: string;
  /** the generation its token was last checked at, and when (ms) that check lapses with nothing changed */
  generation: number;
  until: number;
  /** when its token was last seen to pass, on the deps' `tick` clock (ms): its request's check (`watch`), else when it is added */
  verifiedAt?: number;
  /** the response was ended: its token no longer passes, or could not be checked for UNVERIFIED_MAX_MS, for `reason` */
  cut: (reason: CutReason) => void;
}

export interface OpenResponsesDeps {
  /** this process's revocations: each, once committed, checks the open responses at once — a grant's cascade, and an access token revoked alone (/revoke) */
  revocation?: { onRevoked(fn: (grantId: string) => void): void };
  tokenRevoked?: (fn: () => void) => void;
  generation: () => Maybe<number>;
  checkToken: TokenCheck;
  log: Logger;
  /** STREAM_RECHECK_MS unless given */
  intervalMs?: number;
  /** the monotonic clock UNVERIFIED_MAX_MS is counted on (ms); `performance.now` unless given — a wall clock stepped forward (NTP, a VM resumed) must not cut every answer */
  tick?: () => number;
}

export class OpenResponses {
  private readonly open = new Set<OpenResponse>();
  private readonly tick: () => number;
  private timer: NodeJS.Timeout | undefined;
  /** this process's revocations so far: a request whose check is older than the last one is checked again before R is asked (src/flow/8-gateway.ts) */
  epoch = 0;
  /** a recheck is under way; `again`: another was asked for meanwhile */
  private running = false;
  private again = false;

  constructor(private readonly deps: OpenResponsesDeps) {
    this.tick = deps.tick ?? (() => performance.now());
    deps.revocation?.onRevoked(() => this.revoked());
    deps.tokenRevoked?.(() => this.revoked());
  }

  /** A revocation in this process has committed (a grant's cascade, or a token alone at /revoke): newer checks for requests, and the open responses checked now. */
  revoked(): void {
    this.epoch += 1;
    this.recheck();
  }

  /** Register the request of `x` (its token checked at `x.generation` for `resource` and `requiredScope`) until its response closes. */
  watch(x: Exchange, resource: string, requiredScope: string, cut: OpenResponse['cut']): void {
    const { req, res, generation, until, checkedTick } = x;
    this.add({
      res,
      stream: req.method === 'GET',
      authorization: req.headers.authorization,
      resource,
      requiredScope,
      generation: generation as number,
      until: until as number,
      verifiedAt: checkedTick,
      cut,
    });
  }

  /** Register a forwarded request until its response closes. */
  add(entry: OpenResponse): void {
    // A client that left while its request waited (a refresh at U, a database round trip): its 'close' is past, so it would never leave the set (review 2026-12-07).
    if (entry.res.destroyed) return;
    entry.verifiedAt ??= this.tick();
    this.open.add(entry);
    entry.res.once('close', () => {
      this.open.delete(entry);
      if (!this.open.size) this.stopTimer();
    });
    if (!this.timer) {
      this.timer = setInterval(() => this.recheck(), this.deps.intervalMs ?? STREAM_RECHECK_MS);
      this.timer.unref();
    }
  }

  /** Check every open response whose generation is behind, now (one run at a time; a call during a run runs once more after it). */
  recheck(): void {
    this.cutUnverified(this.tick());
    if (!this.open.size) return;
    if (this.running) return void (this.again = true);
    this.running = true;
    this.checkAll()
      .catch((err: unknown) => this.deps.log[failureLevel(err)]({ err }, 'open gateway responses could not be checked again; the next check retries'))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.recheck();
        }
      });
  }

  /**
   * R's answer is not passed on: P answers in its place (GW-14, R refused U's token) and may revoke
   * the grant while it does — which would otherwise cut P's own 401 before it is written (review
   * 2026-12-07: the client saw the connection closed instead).
   */
  release(res: ServerResponse): void {
    for (const entry of this.open) {
      if (entry.res !== res) continue;
      this.open.delete(entry);
      if (!this.open.size) this.stopTimer();
      return;
    }
  }

  /** how many responses are open */
  get size(): number {
    return this.open.size;
  }

  /** Shutdown: end the server-sent streams (GET), which would hold it for the whole grace period; clients reconnect elsewhere. */
  endStreams(): void {
    for (const entry of this.open) if (entry.stream) entry.res.end();
  }

  close(): void {
    this.stopTimer();
    this.open.clear();
  }

  /** End the responses whose token has not been seen to pass for UNVERIFIED_MAX_MS (the database unreadable all that time). */
  private cutUnverified(now: number): void {
    for (const entry of this.open) {
      if (now - (entry.verifiedAt as number) <= UNVERIFIED_MAX_MS || entry.res.destroyed) continue;
      this.open.delete(entry);
      entry.res.destroy();
      entry.cut('unverified');
    }
  }

  private async checkAll(): Promise<void> {
    const issued = this.tick(); // what a read answers is true as of when it was sent, not when it came back
    const generation = await this.deps.generation();
    const now = Date.now();
    const due = new Set([...this.open].filter((entry) => !entry.res.destroyed && (entry.generation !== generation || now >= entry.until)));
    // Nothing changed for these: their tokens still pass (an entry added while the read was under way keeps its own, later, time).
    for (const entry of this.open) if (!due.has(entry)) entry.verifiedAt = Math.max(entry.verifiedAt as number, issued);
    // Each on its own (on PostgreSQL a round trip or two per token not cached): one that fails is tried again at the next check.
    const failures = (await Promise.allSettled([...due].map((entry) => this.checkOne(entry, generation, issued)))).filter((r) => r.status === 'rejected');
    if (failures.length) throw (failures[0] as PromiseRejectedResult).reason;
  }

  private async checkOne(entry: OpenResponse, generation: number, issued: number): Promise<void> {
    const { authorization, resource, requiredScope } = entry;
    const decision = await this.deps.checkToken({ generation, authorization, queryToken: false, resource, requiredScope });
    if (!this.open.has(entry)) return; // it closed while its check was under way: nothing to end
    if (decision.ok) {
      entry.generation = generation;
      entry.until = decision.until;
      entry.verifiedAt = Math.max(entry.verifiedAt as number, issued);
      return;
    }
    this.open.delete(entry);
    entry.res.destroy();
    entry.cut(decision.reason);
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
