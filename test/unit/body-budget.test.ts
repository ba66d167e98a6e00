/**
 * src/gateway/read-body.ts: the bytes of request bodies held at once (GATEWAY_BODY_MEMORY) and one
 * user's share of them. What a read takes is given back when the read is refused (too large, over
 * the budget or the share, the client gone) or, for a body that was read, when its response closes
 * — or, when the body went with a request to R, once that request is over too (review
 * 2026-12-06: undici keeps a queued request's body after its client left). Never twice, never left
 * held. And src/gateway/forward.ts tells when R's request is over, queued or not.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyBudget, readBody } from '../../src/gateway/read-body.js';
import { createForwarder } from '../../src/gateway/forward.js';
import { NO_SECRETS } from '../../src/gateway/redact.js';
import type { ForwardOutcome } from '../../src/gateway/response-handler.js';
import { listenLoopback } from '../helpers/app.js';

const response = () => Object.assign(new EventEmitter(), { destroyed: false }) as unknown as ServerResponse & EventEmitter;
const request = (headers: Record<string, string> = {}) => Object.assign(new PassThrough(), { headers }) as unknown as IncomingMessage & PassThrough;
const turn = () => new Promise((done) => setImmediate(done));

describe('BodyBudget', () => {
  it('holds what each request takes until its response closes, refusing what would pass the limit', () => {
    const budget = new BodyBudget(100, 100);
    const a = response();
    const b = response();
    const holdA = budget.hold(a, 'alice');
    const holdB = budget.hold(b, 'bob');
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

  it('lets one user hold a quarter of it, at least one GATEWAY_MAX_BODY; another user still gets the rest', () => {
    expect(new BodyBudget(64, 4).share).toBe(16);
    expect(new BodyBudget(10, 4).share).toBe(4); // a quarter is less than one body
    expect(new BodyBudget(4, 4).share).toBe(4);
    const budget = new BodyBudget(400, 10);
    const mine = [budget.hold(response(), 'alice'), budget.hold(response(), 'alice')];
    expect(mine[0]?.take(60)).toBe(true);
    expect(mine[1]?.take(41), 'past alice’s share of 100').toBe(false);
    expect(mine[1]?.take(40)).toBe(true);
    expect(budget.hold(response(), 'bob').take(100), 'bob has his own share').toBe(true);
    mine[0]?.give();
    expect(budget.hold(response(), 'alice').take(60), 'what alice gave back is hers again').toBe(true);
    expect(budget.held).toBe(200);
  });

  it('takes nothing for a response that has closed (nothing would give it back)', () => {
    const budget = new BodyBudget(100, 100);
    const res = response();
    const hold = budget.hold(res, 'alice');
    res.emit('close');
    expect(hold.take(1)).toBe(false);
    expect(budget.held).toBe(0);
  });

  it('keeps a lent body until both its response has closed and its request to R is over, whichever is last', () => {
    const budget = new BodyBudget(100, 100);
    const first = response();
    const lentFirst = budget.hold(first, 'alice');
    lentFirst.take(30);
    const overFirst = lentFirst.lend();
    first.emit('close'); // the client left; R's request still queued
    expect(budget.held).toBe(30);
    overFirst();
    overFirst(); // once only
    expect(budget.held).toBe(0);
    const second = response();
    const lentSecond = budget.hold(second, 'alice');
    lentSecond.take(30);
    const overSecond = lentSecond.lend();
    overSecond(); // R answered first
    expect(budget.held).toBe(30);
    second.emit('close');
    expect(budget.held).toBe(0);
  });
});

describe('readBody with a budget', () => {
  it('takes nothing for a request whose client left before its body was read (on PostgreSQL the token check is a round trip)', async () => {
    const budget = new BodyBudget(100, 100);
    const res = response();
    (res as unknown as { destroyed: boolean }).destroyed = true;
    const hold = budget.hold(res, 'alice');
    expect(hold.take(10)).toBe(false);
    const req = request();
    req.destroy();
    await turn();
    expect(await readBody(req, 80, hold), 'answers at once: its close has been and gone').toEqual({ ok: false, reason: 'client_closed' });
    expect(budget.held).toBe(0);
  });

  it('keeps a body that was read until its response closes', async () => {
    const budget = new BodyBudget(100, 100);
    const req = request();
    const res = response();
    const read = readBody(req, 80, budget.hold(res, 'alice'));
    req.end(Buffer.alloc(70, 'a'));
    expect(await read).toEqual({ ok: true, body: Buffer.alloc(70, 'a') });
    expect(budget.held).toBe(70);
    res.emit('close');
    expect(budget.held).toBe(0);
  });

  it('refuses a body that would pass the budget and gives back what it took', async () => {
    const budget = new BodyBudget(100, 100);
    budget.hold(response(), 'bob').take(50);
    const req = request();
    const read = readBody(req, 80, budget.hold(response(), 'alice'));
    req.write(Buffer.alloc(30)); // 80 held
    await turn();
    expect(budget.held).toBe(80);
    req.write(Buffer.alloc(30)); // would be 110
    expect(await read).toEqual({ ok: false, reason: 'body_memory_full' });
    expect(budget.held).toBe(50);
  });

  it('gives back what a body over the limit, or one whose client left, had taken', async () => {
    const budget = new BodyBudget(1000, 100);
    const big = request();
    const tooLarge = readBody(big, 80, budget.hold(response(), 'alice'));
    big.write(Buffer.alloc(60));
    big.write(Buffer.alloc(60));
    expect(await tooLarge).toEqual({ ok: false, reason: 'body_too_large' });
    expect(budget.held).toBe(0);
    const gone = request();
    const closed = readBody(gone, 80, budget.hold(response(), 'alice'));
    gone.write(Buffer.alloc(60));
    await turn();
    expect(budget.held).toBe(60);
    gone.destroy();
    expect(await closed).toEqual({ ok: false, reason: 'client_closed' });
    expect(budget.held).toBe(0);
  });
});

describe("forward's `over`: when undici is done with the body", () => {
  const servers: { close: () => void; closeAllConnections: () => void }[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      s.close();
    }
  });

  it('is told once when R has answered, and once when a request queued in the pool is aborted because its client left — R never receiving it', async () => {
    const arrived: string[] = [];
    const waiting: ServerResponse[] = [];
    const r = createServer((req, res) => {
      arrived.push(`${req.method} ${req.url}`);
      req.resume();
      if (req.url === '/hold') waiting.push(res);
      else res.end('{}');
    });
    servers.push(r);
    const port = await listenLoopback(r);
    const forwarder = createForwarder(new URL(`http://127.0.0.1:${port}/`), { timeoutMs: 5000, connections: 1 });
    const upstream = { accessToken: 'u-token', secrets: NO_SECRETS };
    const clientReq = (method: string) => ({ method, headers: {} }) as unknown as IncomingMessage; // all the forwarder reads of it
    const outcomes: ForwardOutcome['kind'][] = [];
    let overs = 0;
    try {
      // One answered, through a real front server: `over` once R's answer has ended.
      const front = createServer((req, res) => {
        forwarder.forward(req, res, upstream, '/answered', (o) => void outcomes.push(o.kind), () => undefined, Buffer.from('{}'), () => (overs += 1));
      });
      servers.push(front);
      const answer = await fetch(`http://127.0.0.1:${await listenLoopback(front)}/`, { method: 'POST', body: '{}' });
      expect(answer.status).toBe(200);
      await answer.text();
      for (let i = 0; i < 500 && overs === 0; i++) await new Promise((done) => setTimeout(done, 5));
      expect(overs).toBe(1);

      // The pool's one connection held by a request R does not answer; the next waits in the queue.
      forwarder.forward(clientReq('GET'), response(), upstream, '/hold', () => undefined, () => undefined);
      for (let i = 0; i < 500 && waiting.length === 0; i++) await new Promise((done) => setTimeout(done, 5));
      expect(waiting).toHaveLength(1);
      const queued = response();
      let queuedOver = 0;
      forwarder.forward(clientReq('POST'), queued, upstream, '/queued', (o) => void outcomes.push(o.kind), () => undefined, Buffer.alloc(1000), () => (queuedOver += 1));
      await turn();
      (queued as unknown as { destroyed: boolean }).destroyed = true;
      queued.emit('close'); // its client left
      await turn();
      expect(queuedOver, 'undici still holds the queued body').toBe(0);
      waiting[0]?.end('{}'); // the connection is free: the queued request starts, and is aborted at once
      for (let i = 0; i < 500 && queuedOver === 0; i++) await new Promise((done) => setTimeout(done, 5));
      expect(queuedOver).toBe(1);
      expect(arrived, 'R never received the queued request').toEqual(['POST /answered', 'GET /hold']);
      expect(outcomes).toEqual(['response', 'error']);
    } finally {
      await forwarder.close();
    }
  });

  it("is told once the client's response closes while R's refusal (GW-14: 401) is being discarded, R sending it for ever", async () => {
    const r = createServer((req, res) => {
      req.resume();
      res.writeHead(401, { 'content-type': 'text/event-stream' });
      res.write('data: {}\n\n'); // never ended
    });
    servers.push(r);
    const forwarder = createForwarder(new URL(`http://127.0.0.1:${await listenLoopback(r)}/`), { timeoutMs: 5000 });
    const res = response();
    const outcomes: ForwardOutcome['kind'][] = [];
    let overs = 0;
    try {
      forwarder.forward({ method: 'POST', headers: {} } as unknown as IncomingMessage, res, { accessToken: 'u', secrets: NO_SECRETS }, '/x', (o) => void outcomes.push(o.kind), () => undefined, Buffer.alloc(1000), () => (overs += 1));
      for (let i = 0; i < 500 && outcomes.length === 0; i++) await new Promise((done) => setTimeout(done, 5));
      expect(outcomes).toEqual(['upstream_unauthorized']);
      await turn();
      expect(overs, "R's answer still comes").toBe(0);
      (res as unknown as { destroyed: boolean }).destroyed = true;
      res.emit('close'); // the gateway answered 401 itself; its response is over
      for (let i = 0; i < 500 && overs === 0; i++) await new Promise((done) => setTimeout(done, 5));
      expect(overs, "R's request aborted: the body lent to it is given back").toBe(1);
    } finally {
      await forwarder.close();
    }
  });
});
