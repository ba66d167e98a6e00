/**
 * src/gateway/open-responses.ts: when a forwarded request in flight is checked again and ended
 * (GW-01). Fake timers and a fake clock; the token check and the generation are stand-ins.
 */
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OpenResponses, STREAM_RECHECK_MS, UNVERIFIED_MAX_MS, type OpenResponse } from '../../src/gateway/open-responses.js';
import type { TokenDecision, TokenCheckInput } from '../../src/gateway/token-check.js';

class FakeResponse extends EventEmitter {
  destroyed = false;
  ended = false;
  destroy() {
    this.destroyed = true;
    this.emit('close');
  }
  end() {
    this.ended = true;
    this.emit('close');
  }
}

const HOUR = 3600_000;
let generation: number;
/** each token's decision, by Authorization header */
let decisions: Map<string, TokenDecision>;
let checks: TokenCheckInput[];
let listeners: ((grantId: string) => void)[];
const grant = (until: number): TokenDecision => ({ ok: true, grantId: 'g', subject: 's', clientId: 'c', scopes: new Set(['mcp:tools']), until });
const refusal = (reason: 'unknown_token' | 'expired' | 'client_disabled'): TokenDecision => ({ ok: false, status: 401, reason, error: 'invalid_token', description: undefined });

function registry(deps: Partial<ConstructorParameters<typeof OpenResponses>[0]> = {}) {
  return new OpenResponses({
    generation: () => generation,
    checkToken: (input) => {
      checks.push(input);
      return decisions.get(input.authorization as string) ?? refusal('unknown_token');
    },
    log: pino({ level: 'silent' }),
    revocation: { onRevoked: (fn) => listeners.push(fn) },
    tick: () => Date.now(), // the fake clock stands in for the monotonic one
    ...deps,
  });
}

function open(responses: OpenResponses, token: string, options: { stream?: boolean; until?: number } = {}) {
  const res = new FakeResponse();
  const cut = vi.fn();
  const entry: OpenResponse = {
    res: res as unknown as ServerResponse,
    stream: options.stream ?? false,
    authorization: token,
    resource: 'http://p/mcp',
    requiredScope: 'mcp:tools',
    generation,
    until: options.until ?? Date.now() + HOUR,
    cut,
  };
  responses.add(entry);
  return { res, cut };
}

/** Let the recheck's promises settle. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

beforeEach(() => {
  vi.useFakeTimers();
  generation = 1;
  decisions = new Map([
    ['Bearer a', grant(Date.now() + HOUR)],
    ['Bearer b', grant(Date.now() + HOUR)],
  ]);
  checks = [];
  listeners = [];
});
afterEach(() => vi.useRealTimers());

describe('open responses (GW-01)', () => {
  it('checks nothing while the generation stands and no decision has lapsed', async () => {
    const responses = registry();
    open(responses, 'Bearer a');
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS * 5);
    expect(checks).toEqual([]);
  });

  it('ends a response whose token no longer passes once the generation moves, at the next tick; the others stay', async () => {
    const responses = registry();
    const a = open(responses, 'Bearer a');
    const b = open(responses, 'Bearer b');
    generation = 2;
    decisions.set('Bearer a', refusal('unknown_token'));
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS - 1);
    expect(a.res.destroyed, 'not before the tick').toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.res.destroyed).toBe(true);
    expect(a.cut).toHaveBeenCalledWith('unknown_token');
    expect(b.res.destroyed).toBe(false);
    expect(b.cut).not.toHaveBeenCalled();
    expect(checks.map((c) => [c.authorization, c.generation])).toEqual([
      ['Bearer a', 2],
      ['Bearer b', 2],
    ]);
    expect(responses.size).toBe(1);
    // b was checked at generation 2: the next tick asks nothing.
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(checks).toHaveLength(2);
  });

  it('checks at once after a revocation in this process, without waiting for the tick', async () => {
    const responses = registry();
    const a = open(responses, 'Bearer a');
    generation = 2;
    decisions.set('Bearer a', refusal('client_disabled'));
    for (const listener of listeners) listener('g');
    await settle();
    expect(a.res.destroyed).toBe(true);
    expect(a.cut).toHaveBeenCalledWith('client_disabled');
  });

  it("counts this process's revocations (a grant's cascade, a token alone at /revoke) for the requests still on their way", async () => {
    let tokenRevoked: (() => void) | undefined;
    const responses = registry({ tokenRevoked: (fn) => (tokenRevoked = fn) });
    expect(responses.epoch).toBe(0);
    for (const listener of listeners) listener('g');
    tokenRevoked?.();
    expect(responses.epoch).toBe(2);
  });

  it('checks a response again once its decision lapses (the token expired), with no change to the database', async () => {
    const responses = registry();
    const a = open(responses, 'Bearer a', { until: Date.now() + 1500 });
    decisions.set('Bearer a', refusal('expired'));
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.res.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.res.destroyed).toBe(true);
    expect(a.cut).toHaveBeenCalledWith('expired');
  });

  it('a check that passes moves the response to the new generation and lapse time', async () => {
    const responses = registry();
    open(responses, 'Bearer a', { until: Date.now() + 500 });
    decisions.set('Bearer a', grant(Date.now() + HOUR));
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(checks).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS * 3);
    expect(checks).toHaveLength(1);
  });

  it('runs one check at a time; a call during one runs once more after it', async () => {
    let answer: ((n: number) => void) | undefined;
    let reads = 0;
    const responses = registry({
      generation: () => {
        reads += 1;
        return new Promise<number>((resolve) => (answer = resolve));
      },
    });
    open(responses, 'Bearer a');
    responses.recheck();
    responses.recheck();
    responses.recheck();
    expect(reads).toBe(1);
    answer?.(1);
    await settle();
    expect(reads).toBe(2);
    answer?.(1);
    await settle();
    expect(reads).toBe(2);
  });

  it('keeps the responses when the generation cannot be read, and retries at the next tick', async () => {
    let failing = true;
    const responses = registry({
      generation: () => {
        if (failing) throw new Error('database away');
        return 2;
      },
    });
    const a = open(responses, 'Bearer a');
    decisions.set('Bearer a', refusal('unknown_token'));
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.res.destroyed).toBe(false);
    failing = false;
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.res.destroyed).toBe(true);
  });

  it(`cuts a response whose token could not be checked for ${UNVERIFIED_MAX_MS} ms (the database unreadable), as unverified; one added later stays until its own time`, async () => {
    const responses = registry({
      generation: () => {
        throw new Error('database away');
      },
    });
    const a = open(responses, 'Bearer a');
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS / 2);
    const b = open(responses, 'Bearer b');
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS / 2);
    expect(a.res.destroyed, 'kept for as long as the bound').toBe(false);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.res.destroyed).toBe(true);
    expect(a.cut).toHaveBeenCalledWith('unverified');
    expect(b.res.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS / 2);
    expect(b.cut).toHaveBeenCalledWith('unverified');
    expect(responses.size).toBe(0);
    expect(vi.getTimerCount(), 'no timer left').toBe(0);
  });

  it('counts from the last read that found nothing changed: kept while reads answer, cut the bound after the last one was sent', async () => {
    let failing = false;
    let reads = 0;
    const responses = registry({
      generation: () => {
        reads += 1;
        if (failing) throw new Error('database away');
        return generation;
      },
    });
    const a = open(responses, 'Bearer a');
    await vi.advanceTimersByTimeAsync(2 * UNVERIFIED_MAX_MS);
    expect(a.res.destroyed, 'every read found nothing changed').toBe(false);
    expect(reads).toBe((2 * UNVERIFIED_MAX_MS) / STREAM_RECHECK_MS);
    failing = true;
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS);
    expect(a.res.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.cut).toHaveBeenCalledWith('unverified');
  });

  it('cuts at the bound while a read still hangs, and when the generation is read but the token check keeps failing', async () => {
    const hanging = registry({ generation: () => new Promise<number>(() => undefined) });
    const a = open(hanging, 'Bearer a');
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS + STREAM_RECHECK_MS);
    expect(a.cut).toHaveBeenCalledWith('unverified');

    const failingCheck = registry({
      checkToken: () => {
        throw new Error('database away');
      },
    });
    const b = open(failingCheck, 'Bearer b');
    generation = 2; // something changed: b's token must be checked, and that check fails every time
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS);
    expect(b.res.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(b.cut).toHaveBeenCalledWith('unverified');
  });

  it('a check that passes renews the bound (every read finds a change, so only the checks count)', async () => {
    let fail = false;
    let counter = 1;
    const responses = registry({
      generation: () => (counter += 1),
      checkToken: (input) => {
        checks.push(input);
        if (fail) throw new Error('database away');
        return decisions.get(input.authorization as string) ?? refusal('unknown_token');
      },
    });
    const a = open(responses, 'Bearer a');
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS + 10 * STREAM_RECHECK_MS);
    expect(checks.length, 'checked at every tick').toBe(UNVERIFIED_MAX_MS / STREAM_RECHECK_MS + 10);
    expect(a.res.destroyed, 'each check that passed renewed it').toBe(false);
    fail = true;
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS);
    expect(a.res.destroyed, 'counted from the last check that passed').toBe(false);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.cut).toHaveBeenCalledWith('unverified');
  });

  it('times a read that found nothing changed from when it was sent, not from its late answer', async () => {
    let call = 0;
    const responses = registry({
      generation: () => {
        call += 1;
        if (call === 1) return new Promise<number>((resolve) => setTimeout(() => resolve(generation), 10 * STREAM_RECHECK_MS)); // sent at 1 s, answered at 11 s
        throw new Error('database away');
      },
    });
    const a = open(responses, 'Bearer a');
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS + UNVERIFIED_MAX_MS);
    expect(a.res.destroyed, '30 s after the read was sent: still within the bound').toBe(false);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(a.cut).toHaveBeenCalledWith('unverified');
  });

  it('keeps the later time of a response added while a read was under way', async () => {
    let call = 0;
    const responses = registry({
      generation: () => {
        call += 1;
        if (call === 1) return new Promise<number>((resolve) => setTimeout(() => resolve(generation), 5 * STREAM_RECHECK_MS)); // sent at 1 s, answered at 6 s
        throw new Error('database away');
      },
    });
    open(responses, 'Bearer a');
    await vi.advanceTimersByTimeAsync(3 * STREAM_RECHECK_MS);
    const b = open(responses, 'Bearer b'); // its own check: at 3 s
    await vi.advanceTimersByTimeAsync(UNVERIFIED_MAX_MS);
    expect(b.res.destroyed, 'counted from 3 s, not from the read sent at 1 s').toBe(false);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS);
    expect(b.cut).toHaveBeenCalledWith('unverified');
  });

  it('does not register a response whose client has already left (its close is past)', () => {
    const responses = registry();
    const res = new FakeResponse();
    res.destroy();
    responses.add({ res: res as unknown as ServerResponse, stream: false, authorization: 'Bearer a', resource: 'http://p/mcp', requiredScope: 'mcp:tools', generation, until: Date.now() + HOUR, cut: vi.fn() });
    expect(responses.size).toBe(0);
    expect(vi.getTimerCount(), 'no timer started for it').toBe(0);
  });

  it('counts on the monotonic clock: a wall clock stepped forward cuts nothing, even while the database is away', async () => {
    const responses = registry({
      generation: () => {
        throw new Error('database away');
      },
      tick: () => performance.now(), // not faked: barely moves during this test
    });
    const a = open(responses, 'Bearer a', { until: Date.now() + 100 * HOUR });
    vi.setSystemTime(Date.now() + HOUR); // NTP steps the clock, a VM resumes
    await vi.advanceTimersByTimeAsync(3 * STREAM_RECHECK_MS);
    expect(a.res.destroyed).toBe(false);
    expect(a.cut).not.toHaveBeenCalled();
  });

  it('reads nothing while no response is open, and stops its timer when the last one closes', async () => {
    let reads = 0;
    const responses = registry({
      generation: () => {
        reads += 1;
        return generation;
      },
    });
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS * 3);
    const a = open(responses, 'Bearer a');
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS * 2);
    expect(reads).toBe(2);
    a.res.destroy();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(STREAM_RECHECK_MS * 3);
    expect(reads).toBe(2);
  });

  it('neither ends nor reports a response that closed by itself while its check was under way', async () => {
    let answer: ((d: TokenDecision) => void) | undefined;
    const responses = registry({ checkToken: () => new Promise<TokenDecision>((resolve) => (answer = resolve)) });
    const a = open(responses, 'Bearer a');
    generation = 2;
    responses.recheck();
    await settle();
    a.res.end(); // R's answer finished
    answer?.(refusal('unknown_token'));
    await settle();
    expect(a.res.destroyed).toBe(false);
    expect(a.cut).not.toHaveBeenCalled();
  });

  it('ends the GET streams at shutdown, not the other answers', () => {
    const responses = registry();
    const get = open(responses, 'Bearer a', { stream: true });
    const post = open(responses, 'Bearer b');
    responses.endStreams();
    expect(get.res.ended).toBe(true);
    expect(post.res.ended).toBe(false);
    expect(responses.size).toBe(1);
  });
});
