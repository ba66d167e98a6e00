/**
 * The budget for unauthenticated refusals (DESIGN §9 "Hostile input", SEC-01;
 * RATE_LIMIT_REJECTED, default 60/1m): the one place that decides whether a request that is
 * being refused for want of valid credentials is answered with its refusal or with 429.
 * - It is consulted only where a request is refused anyway: at the gateway for no, malformed,
 *   unknown, expired or otherwise invalid tokens and for a foreign `Origin` without a valid token
 *   (src/flow/8-gateway.ts), at /admin for a request without an admin session or a signed-in
 *   user (src/admin/guard.ts), at the sign-in buttons of /admin/login and /account/login for a
 *   POST without this browser's token (src/session/sign-in.ts), and at /account for a POST with
 *   nobody signed in (src/account/pages.ts). A request with a valid token or session never counts
 *   and is never refused by it; the gateway's path for valid tokens does not call it.
 * - Every refusal counts against the client address's budget (one budget for /mcp, the API
 *   routes, /admin and /account); beyond it the answer is 429 with Retry-After (seconds until the window
 *   resets). Every refusal, 429 or not, goes to the refusal tally (src/audit/refusal-tally.ts):
 *   one audit row per address, reason and minute.
 * - The address is the client IP as TRUST_PROXY says, IPv6 by its /56 (express-rate-limit's
 *   `ipKeyGenerator`, as for the other budgets).
 * - The counter is express-rate-limit's `Store` interface (`increment(key)` → totalHits,
 *   resetTime): its MemoryStore in one process; a shared store (one budget per address across
 *   replicas, DESIGN §8) plugs in through `store`. If the store fails, the refusal stands and is
 *   answered as such (never 429, never a 5xx).
 * - An address's increments take turns: each one's count is read before the next is made. The
 *   MemoryStore answers with its live counter object, so two increments in flight at once (the
 *   gateway's refusals on PostgreSQL come in bursts, after a shared database read) would both
 *   read the later count and refuse beyond the budget.
 */
import { MemoryStore, type Options, type Store } from 'express-rate-limit';
import { addressKey } from '../http/client-address.js';
import type { Logger } from 'pino';
import type { RateBudget } from '../config/duration.js';
import type { RefusalSample, RefusalTally, TallyEvent } from '../audit/refusal-tally.js';

export interface RefusalVerdict {
  /** answer 429 instead of the refusal */
  limited: boolean;
  /** seconds until the address's budget resets (Retry-After) */
  retryAfterSeconds: number;
}

export interface RefusalBudgetDeps {
  budget: RateBudget;
  tally: RefusalTally;
  log: Logger;
  /** the counter; default: express-rate-limit's MemoryStore (this process only) */
  store?: Store;
}

/** The address a budget and a tally count under (src/http/client-address.ts). */
export const refusalAddress = addressKey;

export function createRefusalBudget(deps: RefusalBudgetDeps) {
  const { budget, tally, log } = deps;
  const store = deps.store ?? new MemoryStore();
  void Promise.resolve(store.init?.({ windowMs: budget.windowMs, limit: budget.limit } as Options)).catch((err: unknown) => log.error({ err }, 'refusal budget store failed to start'));
  const windowSeconds = Math.ceil(budget.windowMs / 1000);
  /** per address, the last increment in flight (see the module comment) */
  const turns = new Map<string, Promise<unknown>>();
  const count = (address: string): Promise<{ totalHits: number; resetTime: Date | undefined }> => {
    const counted = (turns.get(address) ?? Promise.resolve()).then(() => store.increment(address)).then(({ totalHits, resetTime }) => ({ totalHits, resetTime }));
    const turn = counted.catch(() => undefined);
    turns.set(address, turn);
    void turn.then(() => turns.get(address) === turn && turns.delete(address));
    return counted;
  };

  return {
    /**
     * Count a refusal of a request without valid credentials from `ip`; resolves to whether it
     * is to be answered 429. `area` names the audit row its count goes to.
     */
    async refuse(area: TallyEvent, ip: string | undefined, reason: string, sample: RefusalSample): Promise<RefusalVerdict> {
      const address = refusalAddress(ip);
      let verdict: RefusalVerdict = { limited: false, retryAfterSeconds: windowSeconds };
      try {
        const { totalHits, resetTime } = await count(address);
        const untilReset = resetTime ? Math.ceil((resetTime.getTime() - Date.now()) / 1000) : windowSeconds;
        verdict = { limited: totalHits > budget.limit, retryAfterSeconds: Math.max(1, Math.min(windowSeconds, untilReset)) };
      } catch (err) {
        log.error({ err }, 'refusal budget store failed; the refusal is answered without a budget');
      }
      tally.note(area, address, reason, verdict.limited, sample);
      return verdict;
    },
    /** Write the refusal counts not yet in the audit log, and stop the store (shutdown). */
    close(): void {
      tally.flush();
      void Promise.resolve(store.shutdown?.()).catch(() => {});
    },
    tally,
  };
}

export type RefusalBudget = ReturnType<typeof createRefusalBudget>;
