/**
 * A refreshed upstream token the database did not take (src/gateway/upstream-token.ts; the
 * end-to-end cases: test/faults/upstream-refresh-save-fails.test.ts), with a fake clock, store, U
 * and revocation:
 *   - the background save: after SAVE_RETRY_FIRST_MS, the pause doubling up to SAVE_RETRY_MAX_MS,
 *     stopped once saved and at close;
 *   - a refresh and a background save of one grant in one process take turns (U never sees a
 *     refresh token twice; a newer held result is not overwritten by an older one);
 *   - a held result meets the row: changed by another replica (dropped for the row), gone
 *     (revoked at U), or revoked by this process (revoked at U at once);
 *   - shutdown waits for a refresh under way, then saves.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createUpstreamTokenSource, SAVE_RETRY_FIRST_MS, SAVE_RETRY_MAX_MS, type UpstreamTokenDeps } from '../../src/gateway/upstream-token.js';
import type { StoredUpstreamTokens, UpstreamTokenSet } from '../../src/store/upstream-tokens.js';

/** a partial fake where a full type is expected */
const cast = <T>(value: unknown): T => value as T;
const who = { subject: 'alice', clientId: 'client-1' };

function setup(failures: number) {
  let row: StoredUpstreamTokens | undefined = { subject: 'alice', accessToken: 'at-1', refreshToken: 'rt-1', expiresAt: 1, version: 'v1' };
  const attempts: number[] = [];
  const presented: string[] = [];
  const revokedAtU: UpstreamTokenSet[] = [];
  const listeners: ((grantId: string) => void)[] = [];
  let gate: Promise<void> | undefined;
  let left = failures;
  let n = 1;
  let generation = 1;
  const store = {
    access: () => row && { accessToken: row.accessToken, refreshToken: row.refreshToken, expiresAt: row.expiresAt },
    get: async () => row,
    replace: async (_grantId: string, version: string, tokens: UpstreamTokenSet) => {
      attempts.push(Date.now());
      if (left > 0) {
        left -= 1;
        throw Object.assign(new Error('busy'), { code: 'SQLITE_BUSY' });
      }
      if (!row || version !== row.version) return null;
      row = { ...row, ...tokens, version: `v${++n}` };
      generation += 1; // as the database's trigger moves it
      return row.version;
    },
  };
  const logged: string[] = [];
  let issued = 1;
  const deps: UpstreamTokenDeps = {
    store: cast(store),
    upstream: cast(() => ({
      refresh: async (refreshToken: string) => {
        presented.push(refreshToken);
        await gate;
        issued += 1;
        return { accessToken: `at-${issued}`, refreshToken: `rt-${issued}`, expiresAt: Date.now() + 3_600_000 };
      },
    })),
    revocation: cast({ revokeGrant: async () => true, revokeUnkept: (_g: string, tokens: UpstreamTokenSet) => revokedAtU.push(tokens), onRevoked: (fn: (g: string) => void) => listeners.push(fn) }),
    audit: cast({ record: async () => undefined }),
    generation: () => generation,
    exclusive: (_name, _wait, fn) => fn(),
    log: cast({ warn: (_o: unknown, m: string) => logged.push(m), error: (_o: unknown, m: string) => logged.push(`ERROR ${m}`) }),
  };
  /** U answers only once `open` is called */
  const holdU = () => {
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    return () => {
      gate = undefined;
      open();
    };
  };
  return {
    source: createUpstreamTokenSource(deps),
    attempts,
    presented,
    revokedAtU,
    logged,
    holdU,
    failNext: (k: number) => (left = k),
    row: () => row,
    setRow: (r: StoredUpstreamTokens | undefined) => (row = r),
    revoked: (grantId: string) => listeners.forEach((l) => l(grantId)),
  };
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
    expect(logged.at(-1)).toMatch(/^ERROR .*could not be saved before exit/);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(attempts).toHaveLength(2);
  });

  it('close waits for a refresh under way, then saves what it could not', async () => {
    const t = setup(1);
    const open = t.holdU();
    const refreshing = t.source.get('g1', who, true);
    const closing = t.source.close();
    open();
    expect(await refreshing).toMatchObject({ ok: true, accessToken: 'at-2' });
    await closing;
    expect(t.row()).toMatchObject({ accessToken: 'at-2', refreshToken: 'rt-2' });
    expect(t.logged.filter((m) => m.startsWith('ERROR'))).toEqual([]);
  });
});

describe('a refresh and a background save of one grant take turns', () => {
  it('a forced refresh holding the kept token while the background save runs: U never sees a refresh token twice', async () => {
    const t = setup(1);
    await t.source.get('g1', who, true); // rt-1 → at-2/rt-2, held (the save failed)
    const open = t.holdU();
    const refreshing = t.source.get('g1', who, true); // sends the held rt-2 and waits for U
    const saving = t.source.saveHeld();
    open();
    expect(await refreshing).toMatchObject({ ok: true, accessToken: 'at-3' });
    expect(await saving).toBe(0);
    expect(t.row()).toMatchObject({ accessToken: 'at-3', refreshToken: 'rt-3' });
    await t.source.get('g1', who, true);
    expect(t.presented).toEqual(['rt-1', 'rt-2', 'rt-3']);
  });

  it('a background save that waited behind a refresh does not overwrite the newer held result with its older one', async () => {
    const t = setup(1);
    await t.source.get('g1', who, true); // at-2/rt-2 held
    const open = t.holdU();
    t.failNext(1);
    const refreshing = t.source.get('g1', who, true); // rt-2 → at-3/rt-3, whose save fails too
    const saving = t.source.saveHeld(); // took the at-2 entry before waiting its turn
    open();
    expect(await refreshing).toMatchObject({ ok: true, accessToken: 'at-3' });
    expect(await saving).toBe(1);
    expect(t.row()?.accessToken).toBe('at-1');
    expect(await t.source.saveHeld()).toBe(0);
    expect(t.row()).toMatchObject({ accessToken: 'at-3', refreshToken: 'rt-3' });
    expect(t.presented).toEqual(['rt-1', 'rt-2']);
  });
});

describe('a held result meets the row', () => {
  it('changed by another replica (a save committed whose answer was lost, then refreshed there): dropped for the row, whose refresh token is sent', async () => {
    const t = setup(1);
    await t.source.get('g1', who, true); // at-2/rt-2 held over v1
    t.setRow({ subject: 'alice', accessToken: 'at-x', refreshToken: 'rt-x', expiresAt: 1, version: 'v9' });
    expect(await t.source.get('g1', who, true)).toMatchObject({ ok: true, accessToken: 'at-x' });
    expect(t.source.unsavedCount).toBe(0);
    expect(t.presented).toEqual(['rt-1']);
    expect(t.revokedAtU).toEqual([]);
  });

  it('gone (the grant revoked on another replica): the held token is revoked at U and not used', async () => {
    const t = setup(1);
    await t.source.get('g1', who, true);
    t.setRow(undefined);
    expect(await t.source.get('g1', who, true)).toEqual({ ok: false, failure: 'revoked' });
    expect(t.revokedAtU.map((x) => x.refreshToken)).toEqual(['rt-2']);
    expect(t.presented).toEqual(['rt-1']);
    expect(t.source.unsavedCount).toBe(0);
  });

  it('revoked by this process: revoked at U at once, before any save', async () => {
    const t = setup(1);
    await t.source.get('g1', who, true);
    t.revoked('g1');
    expect(t.revokedAtU.map((x) => x.refreshToken)).toEqual(['rt-2']);
    expect(t.source.unsavedCount).toBe(0);
    t.revoked('g1');
    expect(t.revokedAtU).toHaveLength(1);
  });
});
