/**
 * Unauthenticated refusals in the audit log (DESIGN §9 "Hostile input"): one row per client
 * address, reason and minute, with a count, instead of one row per refused request — so a flood
 * of refused requests adds a bounded number of rows.
 * - A bucket is (event, address, reason, minute of the injected clock). Its row
 *   (`gateway.rejected_aggregate` / `admin.rejected_aggregate` / `account.rejected_aggregate`, and
 *   `registration|authorization|token.rejected_aggregate` for requests beyond the budgets of
 *   src/runtime/app.ts, reason `rate_limited`; outcome deny) is queued for the
 *   audit log's group commit once its minute has ended: at the first refusal noted in a later
 *   minute, by a timer set for the end of the minute, and at shutdown (`flush`, which also closes
 *   the current minute's buckets).
 * - details: `count` (refusals), `limited` (how many of them were answered 429, RATE_LIMIT_REJECTED),
 *   `minute`, `first_ts`, `last_ts`, and the bucket's first request (`first`: method, resource or
 *   path, Origin) — every string cut to 256 characters by the audit service.
 * - At most MAX_TALLY_BUCKETS buckets per minute; refusals that would open another one are counted
 *   in one bucket per event and reason without an address (`details.overflow: true`). So a minute
 *   adds at most MAX_TALLY_BUCKETS + (number of reasons) rows, whatever the traffic.
 * What a crash loses: the counts of the current minute (not yet written) — and, like every
 * gateway record, what waits in the group-commit queue (≤ 200 ms).
 */
import type { Audit } from './audit.js';
import { requestContext } from '../http/request-context.js';
import { capString, withoutUserinfo } from './limits.js';

export const TALLY_MINUTE_MS = 60_000;
/** Buckets (event × address × reason) per minute before further addresses share one. */
export const MAX_TALLY_BUCKETS = 1000;

export type TallyEvent =
  | 'gateway.rejected_aggregate'
  | 'admin.rejected_aggregate'
  | 'account.rejected_aggregate'
  // requests answered 429 by the /register, /authorize (consent, callback, sign-in) and /token budgets
  | 'registration.rejected_aggregate'
  | 'authorization.rejected_aggregate'
  | 'token.rejected_aggregate';

/** The first refused request of a bucket, as it will be shown in the row. */
export interface RefusalSample {
  method?: string | undefined;
  resource?: string | undefined;
  path?: string | undefined;
  origin?: string | undefined;
}

interface Bucket {
  event: TallyEvent;
  address: string | undefined;
  reason: string;
  count: number;
  limited: number;
  first: number;
  last: number;
  sample: RefusalSample;
}

const cutSample = (sample: RefusalSample): RefusalSample => {
  const out: RefusalSample = {};
  for (const [key, value] of Object.entries(sample) as [keyof RefusalSample, string | undefined][]) {
    if (typeof value === 'string') out[key] = capString(withoutUserinfo(value)); // masked before the cut (src/audit/limits.ts)
  }
  return out;
};

const iso = (ms: number) => new Date(ms).toISOString();

/** Counts refusals per bucket and queues one row per bucket once its minute has ended (see above). */
export class RefusalTally {
  private readonly now: () => number;
  private minute = -1;
  private buckets = new Map<string, Bucket>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly audit: Audit,
    options: { now?: () => number } = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Count one refused request (`limited`: it was answered 429). */
  note(event: TallyEvent, address: string | undefined, reason: string, limited: boolean, sample: RefusalSample): void {
    const at = this.now();
    this.rollOver(at);
    this.minute = Math.max(this.minute, Math.floor(at / TALLY_MINUTE_MS));
    const own = capString(address || 'unknown');
    let key = `${event}\0${own}\0${reason}`;
    let bucket = this.buckets.get(key);
    let overflow = false;
    if (!bucket && this.buckets.size >= MAX_TALLY_BUCKETS) {
      overflow = true;
      key = `${event}\0\0${reason}`;
      bucket = this.buckets.get(key);
    }
    if (!bucket) {
      bucket = { event, address: overflow ? undefined : own, reason: capString(reason), count: 0, limited: 0, first: at, last: at, sample: cutSample(sample) };
      this.buckets.set(key, bucket);
    }
    bucket.count += 1;
    if (limited) bucket.limited += 1;
    bucket.last = at;
    this.arm(at);
  }

  /** Write the buckets of a minute that has ended. */
  rollOver(at = this.now()): void {
    const current = Math.floor(at / TALLY_MINUTE_MS);
    if (this.minute !== -1 && current > this.minute) {
      const closing = this.buckets;
      const closingMinute = this.minute;
      this.buckets = new Map();
      this.minute = current;
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      this.write(closing, closingMinute);
    }
  }

  /** Write every bucket now, the current minute's included (shutdown). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const closing = this.buckets;
    this.buckets = new Map();
    this.write(closing, this.minute);
  }

  /** Buckets waiting for their minute to end (tests, metrics). */
  pending(): number {
    return this.buckets.size;
  }

  /** Queue one row per bucket; runs outside any request's context so no request id or IP leaks in. */
  private write(closing: Map<string, Bucket>, bucketMinute: number): void {
    if (!closing.size) return;
    requestContext.exit(() => {
      for (const b of closing.values()) {
        this.audit.defer({
          event: b.event,
          reason: b.reason,
          ip: b.address,
          details: {
            count: b.count,
            limited: b.limited,
            minute: iso(bucketMinute * TALLY_MINUTE_MS),
            first_ts: iso(b.first),
            last_ts: iso(b.last),
            first: b.sample,
            overflow: b.address === undefined ? true : undefined,
          },
        });
      }
    });
  }

  /** The minute's rows are written when it ends even if no other refusal comes. */
  private arm(at: number): void {
    if (this.timer || !this.buckets.size) return;
    const untilEnd = Math.min(TALLY_MINUTE_MS, Math.max(0, (this.minute + 1) * TALLY_MINUTE_MS - at));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const t = this.now();
      this.rollOver(t);
      this.arm(t);
    }, untilEnd + 100).unref();
  }
}

export function createRefusalTally(audit: Audit, options: { now?: () => number } = {}): RefusalTally {
  return new RefusalTally(audit, options);
}
