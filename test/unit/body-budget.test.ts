/**
 * src/gateway/read-body.ts: the bytes of request bodies held at once (GATEWAY_BODY_MEMORY). What a
 * read takes is given back when the read is refused (too large, over the budget, the client gone)
 * or, for a body that was read, when its response closes — never twice, never left held.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BodyBudget, readBody } from '../../src/gateway/read-body.js';

const response = () => new EventEmitter() as unknown as ServerResponse & EventEmitter;
const request = (headers: Record<string, string> = {}) => Object.assign(new PassThrough(), { headers }) as unknown as IncomingMessage & PassThrough;

describe('BodyBudget', () => {
  it('holds what each request takes until its response closes, refusing what would pass the limit', () => {
    const budget = new BodyBudget(100);
    const a = response();
    const b = response();
    const holdA = budget.hold(a);
    const holdB = budget.hold(b);
    expect(holdA.take(60)).toBe(true);
    expect(holdB.take(41)).toBe(false); // 101 > 100: nothing taken
    expect(budget.held).toBe(60);
    expect(holdB.take(40)).toBe(true); // exactly the limit
    expect(budget.held).toBe(100);
    a.emit('close');
    expect(budget.held).toBe(40);
    holdB.give();
    holdB.give(); // once only
    b.emit('close');
    expect(budget.held).toBe(0);
  });

  it('takes nothing for a response that has closed (nothing would give it back)', () => {
    const budget = new BodyBudget(100);
    const res = response();
    const hold = budget.hold(res);
    res.emit('close');
    expect(hold.take(1)).toBe(false);
    expect(budget.held).toBe(0);
  });
});

describe('readBody with a budget', () => {
  it('keeps a body that was read until its response closes', async () => {
    const budget = new BodyBudget(100);
    const req = request();
    const res = response();
    const read = readBody(req, 80, budget.hold(res));
    req.end(Buffer.alloc(70, 'a'));
    expect(await read).toEqual({ ok: true, body: Buffer.alloc(70, 'a') });
    expect(budget.held).toBe(70);
    res.emit('close');
    expect(budget.held).toBe(0);
  });

  it('refuses a body that would pass the budget and gives back what it took', async () => {
    const budget = new BodyBudget(100);
    const other = budget.hold(response());
    other.take(50);
    const req = request();
    const read = readBody(req, 80, budget.hold(response()));
    req.write(Buffer.alloc(30)); // 80 held
    await new Promise((done) => setImmediate(done));
    expect(budget.held).toBe(80);
    req.write(Buffer.alloc(30)); // would be 110
    expect(await read).toEqual({ ok: false, reason: 'body_memory_full' });
    expect(budget.held).toBe(50);
  });

  it('gives back what a body over the limit, or one whose client left, had taken', async () => {
    const budget = new BodyBudget(1000);
    const big = request();
    const tooLarge = readBody(big, 80, budget.hold(response()));
    big.write(Buffer.alloc(60));
    big.write(Buffer.alloc(60));
    expect(await tooLarge).toEqual({ ok: false, reason: 'body_too_large' });
    expect(budget.held).toBe(0);
    const gone = request();
    const closed = readBody(gone, 80, budget.hold(response()));
    gone.write(Buffer.alloc(60));
    await new Promise((done) => setImmediate(done));
    expect(budget.held).toBe(60);
    gone.destroy();
    expect(await closed).toEqual({ ok: false, reason: 'client_closed' });
    expect(budget.held).toBe(0);
  });
});
