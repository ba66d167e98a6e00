/**
 * README "Audit durability": while the database refuses the group commit, queued gateway records
 * "are kept (up to 5,000) and committed once it is free" (src/audit/audit.ts MAX_QUEUED_ROWS). No
 * test went past the cap (audit of the documentation's claims). Here a store refuses every commit
 * while 6,200 records are made: 5,000 — the newest — are kept, the oldest 1,200 dropped with an
 * error line saying how many, and once the database takes commits again exactly those 5,000 are
 * committed, in the order they were made.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Audit, GROUP_COMMIT_MS, MAX_QUEUED_ROWS } from '../../src/audit/audit.js';
import type { AuditLogStore, NewAuditRow } from '../../src/store/audit-log.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A store that refuses every commit (SQLITE_BUSY) until `accept()`; `appended`: the client ids committed, in order. */
function refusingStore() {
  const appended: string[] = [];
  let refusing = true;
  const store = {
    inTransaction: () => false,
    append: (rows: NewAuditRow[]) => {
      if (refusing) return Promise.reject(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }));
      appended.push(...rows.map((r) => r.client_id as string));
      return Promise.resolve({ seq: appended.length, hash: 'h', key_id: 'k' });
    },
  } as unknown as AuditLogStore;
  return { store, appended, accept: () => void (refusing = false) };
}

describe('gateway records queued while the database refuses commits', () => {
  it('past MAX_QUEUED_ROWS (5,000) the oldest are dropped, an error is logged, and at most 5,000 are kept and later committed in order', async () => {
    expect(MAX_QUEUED_ROWS).toBe(5_000); // the number README states
    const { store, appended, accept } = refusingStore();
    const lines: { level: number; msg: string; dropped?: number }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const audit = new Audit(store, pino({ level: 'info' }, sink));

    const total = MAX_QUEUED_ROWS + 1_200;
    const made: string[] = [];
    for (let i = 0; i < total; i++) {
      made.push(`c${i}`);
      audit.defer({ event: 'gateway.forwarded', clientId: `c${i}` });
      if (i % 250 === 0) await vi.advanceTimersByTimeAsync(0); // the refusals land as traffic goes on
    }
    await vi.advanceTimersByTimeAsync(3 * GROUP_COMMIT_MS); // retries, refused too
    expect(appended).toEqual([]);
    expect(audit.queued).toBe(MAX_QUEUED_ROWS);

    const errors = lines.filter((l) => l.level >= 50);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((l) => l.msg === 'audit queue full while the database refuses commits: the oldest records were dropped')).toBe(true);
    expect(errors.reduce((sum, l) => sum + (l.dropped ?? 0), 0)).toBe(total - MAX_QUEUED_ROWS);

    accept();
    await audit.flush();
    expect(audit.queued).toBe(0);
    expect(appended).toEqual(made.slice(total - MAX_QUEUED_ROWS));
  });

  it('below the cap nothing is dropped and no error is logged', async () => {
    const { store, appended, accept } = refusingStore();
    const log = pino({ level: 'silent' });
    const error = vi.spyOn(log, 'error');
    const audit = new Audit(store, log);
    for (let i = 0; i < MAX_QUEUED_ROWS; i++) audit.defer({ event: 'gateway.forwarded', clientId: `c${i}` });
    await vi.advanceTimersByTimeAsync(3 * GROUP_COMMIT_MS);
    expect(audit.queued).toBe(MAX_QUEUED_ROWS);
    expect(error).not.toHaveBeenCalled();
    accept();
    await audit.flush();
    expect(appended).toHaveLength(MAX_QUEUED_ROWS);
  });
});
