/**
 * The runtime's shutdown waits for the revocations at U that the last requests started (UP-08)
 * before it flushes the audit log and closes the database: the process exits as soon as `serve`
 * returns (src/cli/bin.ts), so anything still in flight then is cut off — a user's revocation
 * that never reached U would leave U's refresh token live (found by the review of 2026-12-06).
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../helpers/app.js';

describe('runtime › dispose', () => {
  it('awaits the upstream revocations in flight, then flushes the audit log, then closes the database', async () => {
    const app = await startTestApp();
    const { runtime } = app;
    const order: string[] = [];
    let finishRevocation!: () => void;
    const inFlight = new Promise<void>((resolve) => (finishRevocation = resolve));
    runtime.revocation.settled = async () => {
      order.push('revocations awaited');
      await inFlight;
      order.push('revocations settled');
    };
    const flush = runtime.audit.flush.bind(runtime.audit);
    runtime.audit.flush = async () => {
      order.push('audit flushed');
      return flush();
    };
    const close = runtime.sql.close.bind(runtime.sql);
    runtime.sql.close = async () => {
      order.push('database closed');
      return close();
    };
    const closing = app.close();
    // Let the shutdown run as far as it can while the revocation is still in flight.
    for (let i = 0; i < 20 && !order.includes('revocations awaited'); i++) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['revocations awaited']);
    finishRevocation();
    await closing;
    expect(order).toEqual(['revocations awaited', 'revocations settled', 'audit flushed', 'database closed']);
  });
});
