/**
 * The background save of a refreshed upstream token that could not be saved at once
 * (src/gateway/upstream-token.ts; the end-to-end cases: test/faults/upstream-refresh-save-fails.test.ts):
 * retried after SAVE_RETRY_FIRST_MS, the pause doubling up to SAVE_RETRY_MAX_MS while the
 * database stays away, stopped once saved and at close. A fake clock, fake store and fake U.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createUpstreamTokenSource, SAVE_RETRY_FIRST_MS, SAVE_RETRY_MAX_MS, type UpstreamTokenDeps } from '../../src/gateway/upstream-token.js';
import type { StoredUpstreamTokens, UpstreamTokenSet } from '../../src/store/upstream-tokens.js';
/** a partial fake where a full type is expected */
const cast = <T>(value: unknown): T => value as T;

const who = { subject: 'alice', clientId: 'client-1' };

function setup(failures: number) {
  let row: StoredUpstreamTokens = { subject: 'alice', accessToken: 'at-1', refreshToken: 'rt-1', expiresAt: 1, version: 'v1' };
  const attempts: number[] = [];
  let left = failures;
  let n = 1;
  const store = {
    access: () => ({ accessToken: row.accessToken, refreshToken: row.refreshToken, expiresAt: row.expiresAt }),
    get: async () => row,
    replace: async (_grantId: string, version: string, tokens: UpstreamTokenSet) => {
      attempts.push(Date.now());
      if (left > 0) {
        left -= 1;
        throw Object.assign(new Error('busy'), { code: 'SQLITE_BUSY' });
      }
      if (version !== row.version) return null;
      row = { ...row, ...tokens, version: `v${++n}` };
      return row.version;
    },
  };
  const logged: string[] = [];
  const deps: UpstreamTokenDeps = {
    store: cast(store),
    upstream: cast(() => ({ refresh: async () => ({ accessToken: 'at-2', refreshToken: 'rt-2', expiresAt: Date.now() + 3_600_000 }) })),
    revocation: cast({ revokeGrant: async () => true, revokeUnkept: () => undefined }),
    audit: cast({ record: async () => undefined }),
    generation: () => 1,
    exclusive: (_name, _wait, fn) => fn(),
    log: cast({ warn: (_o: unknown, m: string) => logged.push(m), error: (_o: unknown, m: string) => logged.push(m) }),
  };
  return { source: createUpstreamTokenSource(deps), attempts, logged, row: () => row };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the background save of a held upstream token', () => {
  it('retries after 250 ms, doubling while it fails, capped at 5 s; stops once saved', async () => {
    const { source, attempts, row } = setup(7);
    const t0 = Date.now();
    expect(await source.get('g1', who, true)).toMatchObject({ ok: true, accessToken: 'at-2' });
    expect(source.unsavedCount).toBe(1);
    await vi.advanceTimersByTimeAsync(40_000);
    const pauses = attempts.slice(1).map((t, i) => t - (attempts[i] as number));
    // 1 failure in the request, then 6 failed retries and the 7th saves.
    expect(attempts[0]).toBe(t0);
    expect(pauses).toEqual([SAVE_RETRY_FIRST_MS, 500, 1000, 2000, 4000, SAVE_RETRY_MAX_MS, SAVE_RETRY_MAX_MS]);
    expect(source.unsavedCount).toBe(0);
    expect(row()).toMatchObject({ accessToken: 'at-2', refreshToken: 'rt-2', version: 'v2' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('close stops the retries after one last attempt, and says what is lost', async () => {
    const { source, attempts, logged } = setup(100);
    await source.get('g1', who, true);
    await source.close();
    expect(attempts).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
    expect(logged.at(-1)).toMatch(/could not be saved before exit/);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(attempts).toHaveLength(2);
  });
});
