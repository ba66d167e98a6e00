/**
 * README "Operations" → Start: the upstream's metadata is loaded at start; while it cannot be, a
 * clear line is logged and the attempt repeated "with backoff (1 s … 30 s)". The e2e test
 * (test/e2e/operations.test.ts, "an unreachable upstream") sees only the first line ("retrying in
 * 1 s"); no test followed the sequence (audit of the documentation's claims). Here, on a fake
 * clock, `serve`'s watcher (src/cli/commands/serve.ts `watchUpstream`): attempts 1 s, 2 s, 4 s,
 * 8 s, 16 s apart, then every 30 s, one line each naming the delay; once the upstream answers,
 * one "reachable now" line and no further attempt; and the returned function stops the retries
 * (shutdown).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UPSTREAM_RETRY_MAX_MS, watchUpstream } from '../../src/cli/commands/serve.js';
import type { Runtime } from '../../src/runtime/server.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** An upstream that is unreachable until `reachable` is set, and when each attempt was made. */
function fakeUpstream() {
  const state = { reachable: false, attempts: [] as number[] };
  const start = Date.now();
  const upstream = {
    name: 'Fake Upstream',
    ready: () => {
      state.attempts.push(Date.now() - start);
      return state.reachable ? Promise.resolve() : Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:9'));
    },
  };
  const runtime = { upstream: () => upstream } as unknown as Pick<Runtime, 'upstream'>;
  const lines: string[] = [];
  return { state, runtime, io: { err: (text: string) => lines.push(text) }, lines };
}

describe('start: the upstream unreachable', () => {
  it('retries with backoff 1 s, 2 s, 4 s … capped at 30 s, one line per attempt, until it answers', async () => {
    expect(UPSTREAM_RETRY_MAX_MS).toBe(30_000);
    const { state, runtime, io, lines } = fakeUpstream();
    const stop = watchUpstream(runtime, io);
    await vi.advanceTimersByTimeAsync(0);
    expect(state.attempts).toEqual([0]);

    await vi.advanceTimersByTimeAsync(121_000);
    // Gaps 1, 2, 4, 8, 16, then 30, 30, 30 s.
    expect(state.attempts).toEqual([0, 1_000, 3_000, 7_000, 15_000, 31_000, 61_000, 91_000, 121_000]);
    const delays = lines.map((l) => /retrying in (\d+) s/.exec(l)?.[1]);
    expect(delays).toEqual(['1', '2', '4', '8', '16', '30', '30', '30', '30']);
    expect(lines[0]).toBe('  upstream Fake Upstream is not reachable (connect ECONNREFUSED 127.0.0.1:9); retrying in 1 s — /readyz answers 503 until it is');

    // Not one attempt before its time.
    await vi.advanceTimersByTimeAsync(29_999);
    expect(state.attempts).toHaveLength(9);
    state.reachable = true;
    await vi.advanceTimersByTimeAsync(1);
    expect(state.attempts.at(-1)).toBe(151_000);
    expect(lines.at(-1)).toBe('  upstream Fake Upstream is reachable now');

    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(state.attempts).toHaveLength(10);
    stop();
  });

  it('reachable at the first attempt: no line, no retry', async () => {
    const { state, runtime, io, lines } = fakeUpstream();
    state.reachable = true;
    const stop = watchUpstream(runtime, io);
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(state.attempts).toEqual([0]);
    expect(lines).toEqual([]);
    stop();
  });

  it('the returned function (shutdown) stops the retries', async () => {
    const { state, runtime, io } = fakeUpstream();
    const stop = watchUpstream(runtime, io);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(state.attempts).toEqual([0, 1_000, 3_000]);
    stop();
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(state.attempts).toEqual([0, 1_000, 3_000]);
  });
});
