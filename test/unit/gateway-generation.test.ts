/**
 * The gateway's per-request generation read (src/gateway/generation.ts), the heart of DESIGN §8's
 * "a revocation committed on one replica fails the next gateway request on every replica that
 * starts after the revoking response was received" (SECURITY.md): concurrent requests share reads,
 * but a request only ever uses a read ISSUED AFTER it arrived. Driven here with reads whose
 * answers the test releases one by one, so every interleaving is exact.
 */
import { describe, expect, it } from 'vitest';
import { coalescedReads } from '../../src/gateway/generation.js';
import { gate, turns, watch } from '../helpers/sql-driver-cases.js';

/** A read source whose k-th read answers k, when the test releases it. */
function controlledReads() {
  const issued: { n: number; release: () => void }[] = [];
  const read = () => {
    const n = issued.length + 1;
    const g = gate();
    issued.push({ n, release: g.open });
    return g.wait.then(() => n);
  };
  return { read, issued };
}

describe('gateway › generation reads shared by concurrent requests', () => {
  it('a request arriving while a read is in flight waits for the next read, issued after that one answered', async () => {
    const { read, issued } = controlledReads();
    const generation = coalescedReads(read);
    const first = generation() as Promise<number>; // request 1: read 1 issued now
    expect(issued).toHaveLength(1);
    // Request 2 arrives while read 1 is in flight — say, just after a revocation committed that
    // read 1's snapshot may not contain. It must not get read 1's answer.
    const second = generation() as Promise<number>;
    const third = generation() as Promise<number>; // request 3, also during read 1: shares read 2
    expect(issued).toHaveLength(1); // nothing more is issued while read 1 is in flight
    const secondDone = watch(second);
    issued[0]?.release();
    expect(await first).toBe(1);
    await turns(2);
    expect(secondDone()).toBe(false); // read 1 answered: not good enough for request 2
    expect(issued).toHaveLength(2); // read 2 was issued when read 1 answered
    issued[1]?.release();
    expect(await second).toBe(2);
    expect(await third).toBe(2);
    expect(issued).toHaveLength(2);
  });

  it('with no read in flight a request issues its own at once; arrivals during read k+1 wait for read k+2', async () => {
    const { read, issued } = controlledReads();
    const generation = coalescedReads(read);
    const a = generation() as Promise<number>;
    const b = generation() as Promise<number>; // during read 1 → read 2
    issued[0]?.release();
    await a;
    await turns(2);
    const c = generation() as Promise<number>; // during read 2 → read 3, never read 2
    issued[1]?.release();
    expect(await b).toBe(2);
    await turns(2);
    expect(issued).toHaveLength(3);
    issued[2]?.release();
    expect(await c).toBe(3);
    const d = generation() as Promise<number>; // nothing in flight: read 4 at once
    expect(issued).toHaveLength(4);
    issued[3]?.release();
    expect(await d).toBe(4);
  });

  it('a failed read fails the requests that used it; the next read is issued all the same', async () => {
    let n = 0;
    const pending: { resolve: (v: number) => void; reject: (e: Error) => void }[] = [];
    const generation = coalescedReads(
      () =>
        new Promise<number>((resolve, reject) => {
          n += 1;
          pending.push({ resolve, reject });
        }),
    );
    const a = generation() as Promise<number>;
    const b = generation() as Promise<number>;
    pending[0]?.reject(new Error('connection lost'));
    await expect(a).rejects.toThrow('connection lost');
    await turns(2);
    expect(n).toBe(2);
    pending[1]?.resolve(7);
    expect(await b).toBe(7);
  });

  it('passes a synchronous answer straight through (SQLite): no promise, no sharing', () => {
    let reads = 0;
    const generation = coalescedReads(() => ++reads);
    expect(generation()).toBe(1);
    expect(generation()).toBe(2);
  });
});
