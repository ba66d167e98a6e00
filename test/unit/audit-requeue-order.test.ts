/**
 * Gateway records queued for group commit (src/audit/audit.ts) keep the order they were made in
 * when commits fail: two group commits under way at once may fail in either order, and the
 * records of both go back to the queue — before, the one that failed last went in front, so the
 * chain could receive newer records before older ones (found by review).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Audit, GROUP_COMMIT_ROWS } from '../../src/audit/audit.js';
import type { AuditLogStore, NewAuditRow } from '../../src/store/audit-log.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('audit records put back after failed group commits', () => {
  it('two group commits failing in reverse order: the queue commits their records oldest first', async () => {
    const calls: { rows: NewAuditRow[]; fail: (err: Error) => void }[] = [];
    const appended: string[] = [];
    let failing = true;
    const store = {
      inTransaction: () => false,
      append: (rows: NewAuditRow[]) => {
        if (!failing) {
          appended.push(...rows.map((r) => r.client_id as string));
          return Promise.resolve({ seq: appended.length, hash: 'h', key_id: 'k' });
        }
        return new Promise((_resolve, reject) => calls.push({ rows, fail: reject }));
      },
    } as unknown as AuditLogStore;
    const audit = new Audit(store, pino({ level: 'silent' }));
    const made: string[] = [];
    for (let i = 0; i < 2 * GROUP_COMMIT_ROWS; i++) {
      made.push(`c${i}`);
      audit.defer({ event: 'gateway.forwarded', clientId: `c${i}` });
    }
    expect(calls.map((c) => c.rows.length)).toEqual([GROUP_COMMIT_ROWS, GROUP_COMMIT_ROWS]);
    const busy = Object.assign(new Error('busy'), { code: 'SQLITE_BUSY' });
    calls[0]?.fail(busy); // the older batch fails first …
    await vi.advanceTimersByTimeAsync(0);
    calls[1]?.fail(busy); // … then the newer one
    await vi.advanceTimersByTimeAsync(0);
    failing = false;
    await audit.flush();
    expect(appended).toEqual(made);
  });
});
