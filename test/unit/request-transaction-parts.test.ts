/**
 * The small parts the one-transaction-per-request work (issue 13) rests on, each found by review:
 * a busy database recognized through TransactionAbortedError and PostgreSQL's retryable aborts
 * (src/errors/database-unavailable.ts), every provider write settled before a failure is answered
 * (src/http/request-context.ts), and an afterCommit callback that throws reported as a warning
 * instead of an unhandled rejection (src/db/sql.ts).
 */
import { describe, expect, it } from 'vitest';
import { isDatabaseBusy } from '../../src/errors/database-unavailable.js';
import { beforeResponse, commitsSettled, nextThenCommits, requestContext } from '../../src/http/request-context.js';
import { runAfterCommit, TransactionAbortedError } from '../../src/db/sql.js';
import { gate } from '../helpers/sql-driver-cases.js';

describe('isDatabaseBusy', () => {
  it('sees the busy database behind a statement refused because an earlier one failed', () => {
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    expect(isDatabaseBusy(new TransactionAbortedError(busy))).toBe(true);
    expect(isDatabaseBusy(new TransactionAbortedError(new TransactionAbortedError(busy)))).toBe(true);
    expect(isDatabaseBusy(new TransactionAbortedError(new Error('UNIQUE constraint failed')))).toBe(false);
  });

  it('counts PostgreSQL deadlock (40P01) and serialization failure (40001) as busy: the transaction rolled back whole', () => {
    for (const code of ['40P01', '40001', '57P01', 'ECONNREFUSED']) expect(isDatabaseBusy(Object.assign(new Error(code), { code }))).toBe(true);
    for (const code of ['23505', '42P01', undefined]) expect(isDatabaseBusy(Object.assign(new Error('x'), { code }))).toBe(false);
    expect(isDatabaseBusy(undefined)).toBe(false);
  });
});

describe('commitsSettled', () => {
  it('rejects with the failed write only once every other write of the request has settled', async () => {
    const slow = gate();
    let slowSettled = false;
    const outcome = requestContext.run({ requestId: 'r', ip: undefined, commits: [] }, async () => {
      beforeResponse(Promise.reject(new Error('audit insert failed')));
      beforeResponse(slow.wait.then(() => (slowSettled = true)));
      return commitsSettled().then(
        () => 'resolved',
        (err: Error) => `rejected (${err.message}) after the slow write: ${slowSettled}`,
      );
    });
    await new Promise((resolve) => setImmediate(resolve));
    let done = false;
    void outcome.then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(done, 'still waiting for the slow write').toBe(false);
    slow.open();
    expect(await outcome).toBe('rejected (audit insert failed) after the slow write: true');
  });
});

describe('commitsSettled and nextThenCommits: no write outlives the answer', () => {
  const inRequest = <T>(fn: () => Promise<T>) => requestContext.run({ requestId: 'r', ip: undefined, commits: [] }, fn);

  it('a write noted while a failed one is awaited is waited for too', async () => {
    const late = gate();
    let lateSettled = false;
    const outcome = inRequest(async () => {
      beforeResponse(
        Promise.reject(new Error('first write failed')).finally(() => beforeResponse(late.wait.then(() => (lateSettled = true)))),
      );
      return commitsSettled().then(
        () => 'resolved',
        (err: Error) => `${err.message}; the late write settled: ${lateSettled}`,
      );
    });
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    late.open();
    expect(await outcome).toBe('first write failed; the late write settled: true');
  });

  it('when next() throws, its writes settle before its error goes on', async () => {
    const write = gate();
    let writeSettled = false;
    const outcome = inRequest(() =>
      nextThenCommits(async () => {
        beforeResponse(write.wait.then(() => (writeSettled = true)));
        throw new Error('the handler threw');
      }).then(
        () => 'resolved',
        (err: Error) => `${err.message}; its write settled: ${writeSettled}`,
      ),
    );
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    write.open();
    expect(await outcome).toBe('the handler threw; its write settled: true');
  });
});

describe('runAfterCommit', () => {
  it('a callback that throws becomes a process warning; the callbacks after it still run', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('warning', onWarning);
    process.on('unhandledRejection', onUnhandled);
    try {
      const ran: string[] = [];
      runAfterCommit([
        () => {
          throw new Error('revocation call failed');
        },
        () => void ran.push('second'),
      ]);
      for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(ran).toEqual(['second']);
      expect(warnings).toEqual(['an afterCommit callback threw: revocation call failed']);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
