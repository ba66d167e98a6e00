/**
 * The refusal tally (src/audit/refusal-tally.ts) and the string cap (src/audit/limits.ts): one
 * row per address, reason and minute; a bounded number of rows per minute however many
 * addresses; rows only when the minute ends or at flush; cut strings marked and never split
 * inside a surrogate pair.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Audit, maskedCanonicalJson } from '../../src/audit/audit.js';
import { createRefusalTally, MAX_TALLY_BUCKETS } from '../../src/audit/refusal-tally.js';
import { capString, MAX_STORED_STRING } from '../../src/audit/limits.js';
import type { AuditLogStore, NewAuditRow } from '../../src/store/audit-log.js';

function harness(start: number) {
  const written: NewAuditRow[] = [];
  const store = { append: async (rows: NewAuditRow[]) => void written.push(...rows), inTransaction: () => false } as unknown as AuditLogStore;
  const audit = new Audit(store, pino({ level: 'silent' }));
  const clock = { t: start };
  const tally = createRefusalTally(audit, { now: () => clock.t });
  const rows = async () => {
    await audit.flush();
    return written.map((r) => ({ ...r, details: JSON.parse(r.details ?? 'null') }));
  };
  return { tally, clock, rows };
}

const MINUTE = Date.parse('2030-01-01T10:00:00Z');

describe('refusal tally', () => {
  it('counts per address and reason, and writes nothing until the minute ends', async () => {
    const { tally, clock, rows } = harness(MINUTE + 1_000);
    for (let i = 0; i < 500; i++) tally.note('gateway.rejected_aggregate', '203.0.113.7', 'no_token', i >= 60, { method: 'POST', origin: 'x'.repeat(3000) });
    tally.note('gateway.rejected_aggregate', '203.0.113.7', 'unknown_token', false, { method: 'GET' });
    clock.t = MINUTE + 59_999;
    tally.rollOver();
    expect(await rows()).toEqual([]);
    clock.t = MINUTE + 60_000;
    tally.rollOver();
    const written = await rows();
    expect(written).toHaveLength(2);
    expect(written[0]).toMatchObject({ event: 'gateway.rejected_aggregate', outcome: 'deny', reason: 'no_token', ip: '203.0.113.7', request_id: null });
    expect(written[0]?.details).toMatchObject({ count: 500, limited: 440, minute: '2030-01-01T10:00:00.000Z', first_ts: '2030-01-01T10:00:01.000Z', first: { method: 'POST' } });
    expect(written[0]?.details.first.origin).toHaveLength(MAX_STORED_STRING);
    expect(written[1]).toMatchObject({ reason: 'unknown_token', details: { count: 1, limited: 0 } });
  });

  it(`keeps at most ${MAX_TALLY_BUCKETS} buckets a minute; further addresses share one row per reason`, async () => {
    const { tally, clock, rows } = harness(MINUTE);
    for (let i = 0; i < MAX_TALLY_BUCKETS + 700; i++) tally.note('admin.rejected_aggregate', `10.0.${i >> 8}.${i & 255}`, 'not_signed_in', false, { path: '/' });
    expect(tally.pending()).toBe(MAX_TALLY_BUCKETS + 1);
    clock.t += 60_000;
    tally.rollOver();
    const written = await rows();
    expect(written).toHaveLength(MAX_TALLY_BUCKETS + 1);
    const overflow = written.filter((r) => r.ip === null);
    expect(overflow).toHaveLength(1);
    expect(overflow[0]?.details).toMatchObject({ count: 700, overflow: true });
  });

  it('writes the current minute at flush (shutdown), and a later refusal opens a new row', async () => {
    const { tally, clock, rows } = harness(MINUTE + 10_000);
    tally.note('gateway.rejected_aggregate', '198.51.100.9', 'no_token', false, {});
    tally.flush();
    expect((await rows()).map((r) => r.details.count)).toEqual([1]);
    clock.t += 1_000;
    tally.note('gateway.rejected_aggregate', '198.51.100.9', 'no_token', false, {});
    clock.t += 60_000;
    tally.note('gateway.rejected_aggregate', '198.51.100.9', 'no_token', false, {}); // closes the previous minute
    expect((await rows()).map((r) => r.details.count)).toEqual([1, 1]);
    expect(tally.pending()).toBe(1);
  });
});

describe('stored strings are capped at 256 characters', () => {
  it('cuts with a trailing … and never inside a surrogate pair', async () => {
    expect(capString('a'.repeat(256))).toBe('a'.repeat(256));
    expect(capString('a'.repeat(257))).toBe(`${'a'.repeat(255)}…`);
    const emoji = `${'a'.repeat(254)}😀😀`; // the first pair straddles the cut
    const cut = capString(emoji);
    expect(cut).toBe(`${'a'.repeat(254)}…`);
    expect(cut.length).toBeLessThanOrEqual(256);
  });

  it('cuts every string inside details, at any depth', async () => {
    const json = JSON.parse(maskedCanonicalJson({ a: 'x'.repeat(1000), nested: { list: ['y'.repeat(300), 'short'] } }));
    expect(json.a).toHaveLength(256);
    expect(json.nested.list[0]).toHaveLength(256);
    expect(json.nested.list[1]).toBe('short');
  });
});
