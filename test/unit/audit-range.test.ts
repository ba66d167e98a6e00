/**
 * Time-range filters on the audit log (admin audit view, overview counts) are answered through
 * seq ranges. Rows may be written slightly out of ts order (group commit, the CLI writing beside the
 * server), so the bounds must hold for any order within the documented margin: here against a
 * brute-force filter over rows whose ts lag by up to 4.9 s, with bursts and long gaps.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditLogStore, type AuditFilter, type NewAuditRow } from '../../src/store/audit-log.js';
import { KeyRing } from '../../src/crypto/keys.js';
import type { Sql } from '../../src/db/sql.js';
import { openTestSql } from '../helpers/engine.js';

const opened: Sql[] = [];
afterAll(async () => {
  for (const sql of opened) await sql.close();
});

/** A fresh, migrated database on the test engine (test/helpers/engine.ts). */
async function database(): Promise<Sql> {
  const sql = await openTestSql(mkdtempSync(join(tmpdir(), 'audit-range-')));
  opened.push(sql);
  return sql;
}

/** Small deterministic PRNG (mulberry32) so a failure reproduces. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EVENTS = ['token.issued', 'gateway.rejected', 'consent.shown', 'admin.login'];
const T0 = Date.parse('2026-11-20T00:00:00.000Z');

async function setup(seed: number, n = 3000) {
  const log = createAuditLogStore(await database(), { key: new KeyRing(Buffer.alloc(32, 7)).auditKey });
  const rnd = prng(seed);
  let clock = T0;
  const rows: NewAuditRow[] = [];
  for (let i = 0; i < n; i++) {
    // mostly 0-400 ms apart, sometimes a burst (same ms), sometimes an idle hour
    const r = rnd();
    clock += r < 0.1 ? 0 : r < 0.98 ? Math.floor(rnd() * 400) : Math.floor(rnd() * 3_600_000);
    const lag = Math.floor(rnd() * 4900); // written up to 4.9 s after its timestamp
    const event = EVENTS[Math.floor(rnd() * EVENTS.length)] as string;
    rows.push({ ts: new Date(clock - lag).toISOString(), event, outcome: event === 'gateway.rejected' ? 'deny' : 'allow', reason: null, subject: `u${i % 3}`, client_id: null, ip: null, request_id: null, details: null });
  }
  await log.append(rows);
  const all = rows.map((row, i) => ({ ...row, seq: i + 1 }));
  return { log, all, rnd, end: clock };
}

function brute(all: Awaited<ReturnType<typeof setup>>['all'], f: AuditFilter) {
  return all.filter((r) => (!f.from || r.ts >= f.from) && (!f.to || r.ts < f.to) && (!f.event || r.event === f.event) && (!f.outcome || r.outcome === f.outcome) && (!f.subject || r.subject === f.subject));
}

describe('audit log time ranges', () => {
  for (const seed of [1, 2, 3]) {
    it(`counts and pages exactly for random ranges over out-of-order rows (seed ${seed})`, async () => {
      const { log, all, rnd, end } = await setup(seed);
      for (let k = 0; k < 150; k++) {
        const a = T0 - 10_000 + Math.floor(rnd() * (end - T0 + 20_000));
        const width = [0, 50, 1000, 5000, 60_000, 3_600_000, 86_400_000][Math.floor(rnd() * 7)] as number;
        const f: AuditFilter = {};
        const shape = rnd();
        if (shape < 0.8) f.from = new Date(a).toISOString();
        if (shape > 0.2) f.to = new Date(a + width).toISOString();
        const pick = rnd();
        if (pick < 0.3) f.event = EVENTS[Math.floor(rnd() * EVENTS.length)];
        else if (pick < 0.5) f.outcome = 'deny';
        else if (pick < 0.6) f.subject = 'u1';
        const want = brute(all, f);

        expect(await log.count(f), JSON.stringify(f)).toBe(want.length);

        // newest first, in pages of 37, following the cursor
        const got: number[] = [];
        let before: number | undefined;
        for (let guard = 0; guard < 200; guard++) {
          const page = await log.page({ ...f, beforeSeq: before }, 37);
          got.push(...page.map((r) => r.seq));
          if (page.length < 37) break;
          before = page[page.length - 1]?.seq;
        }
        expect(got, JSON.stringify(f)).toEqual(want.map((r) => r.seq).reverse());
      }
    });
  }

  it('counts a range that holds no row, and an empty log', async () => {
    const { log, end } = await setup(9, 50);
    expect(await log.count({ from: new Date(end + 86_400_000).toISOString() })).toBe(0);
    expect(await log.count({ to: new Date(T0 - 86_400_000).toISOString() })).toBe(0);
    const empty = createAuditLogStore(await database());
    expect(await empty.count({ from: new Date(T0).toISOString(), event: 'token.issued' })).toBe(0);
    expect(await empty.page({ from: new Date(T0).toISOString() }, 10)).toEqual([]);
  });

  it('counts and pages ranges whose ±5 s margin leaves the years 0000–9999 (DESIGN §9: no RangeError)', async () => {
    const { log, all } = await setup(10, 50);
    for (const f of [{ from: '0000-01-01T00:00:00.000Z' }, { to: '9999-12-31T23:59:59.999Z' }, { from: '0000-01-01T00:00:02.000Z', to: '9999-12-31T23:59:58.000Z' }, { from: '9999-12-31T23:59:59.999Z' }, { to: '0000-01-01T00:00:00.000Z' }]) {
      const want = brute(all, f);
      expect(await log.count(f), JSON.stringify(f)).toBe(want.length);
      expect((await log.page(f, 100)).map((r) => r.seq), JSON.stringify(f)).toEqual(want.map((r) => r.seq).reverse());
    }
  });
});
