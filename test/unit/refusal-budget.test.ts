/**
 * The refusal budget (src/audit/refusal-budget.ts, RATE_LIMIT_REJECTED): exactly `limit` refusals
 * per address are answered as such, the rest 429 — also when refusals arrive in a burst, as the
 * gateway's do on PostgreSQL (many requests continue at once after one shared database read).
 * express-rate-limit's MemoryStore answers with its live counter, so increments in flight
 * together used to read the later count and refuse within the budget.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createRefusalBudget } from '../../src/audit/refusal-budget.js';
import { createRefusalTally } from '../../src/audit/refusal-tally.js';
import { Audit } from '../../src/audit/audit.js';
import type { AuditLogStore } from '../../src/store/audit-log.js';

function budget(limit: number) {
  const store = { append: async () => undefined, inTransaction: () => false } as unknown as AuditLogStore;
  const log = pino({ level: 'silent' });
  return createRefusalBudget({ budget: { limit, windowMs: 60_000 }, tally: createRefusalTally(new Audit(store, log)), log });
}

describe('refusal budget', () => {
  it('answers exactly the budget as refusals and the rest 429, for a burst of concurrent refusals', async () => {
    const refusals = budget(60);
    const verdicts = await Promise.all(Array.from({ length: 200 }, () => refusals.refuse('gateway.rejected_aggregate', '203.0.113.7', 'no_token', {})));
    expect(verdicts.filter((v) => !v.limited)).toHaveLength(60);
    expect(verdicts.slice(0, 60).every((v) => !v.limited)).toBe(true); // in order of arrival
    // another address has its own budget
    expect((await refusals.refuse('gateway.rejected_aggregate', '198.51.100.9', 'no_token', {})).limited).toBe(false);
    refusals.close();
  });
});
