/**
 * A refreshed upstream token must be stored (UP-08, RFC 9700 §4.14.2; found by review,
 * 2026-12-06): once U has answered a refresh it may have rotated its refresh token, so the old one
 * is spent. A save that met the database busy or away used to be reported as a failed refresh at
 * U ("upstream_error") and the new tokens dropped — the next refresh then reused the old refresh
 * token, which U (GitHub, for one) answers by revoking the user's whole grant. Now the save is
 * retried while the database is busy (src/gateway/upstream-token.ts SAVE_RETRY_DELAYS_MS), and a
 * database failure is never audited as U's.
 */
import { describe, expect, it } from 'vitest';
import { createUpstreamTokenSource } from '../../src/gateway/upstream-token.js';

type Saved = { accessToken: string; refreshToken?: string };

function harness(saveFailures: unknown[]) {
  const stored: { current: Saved & { subject: string; expiresAt: number } } = {
    current: { subject: 'alice', accessToken: 'at-old', refreshToken: 'rt-old', expiresAt: Date.now() - 1_000 },
  };
  const calls = { refresh: [] as string[], saves: 0, audit: [] as string[], revoked: [] as string[] };
  const source = createUpstreamTokenSource({
    store: {
      access: async () => ({ ...stored.current, scopes: undefined }),
      get: async () => ({ ...stored.current }),
      save: async (_grantId: string, _subject: string, tokens: Saved) => {
        calls.saves += 1;
        const failure = saveFailures.shift();
        if (failure) throw failure;
        stored.current = { ...stored.current, ...tokens, expiresAt: Date.now() + 3_600_000 };
      },
    } as never,
    upstream: () =>
      ({
        refresh: async (refreshToken: string) => {
          calls.refresh.push(refreshToken);
          return { accessToken: 'at-new', refreshToken: 'rt-new', expiresAt: Date.now() + 3_600_000 };
        },
      }) as never,
    revocation: { revokeGrant: async (grantId: string) => void calls.revoked.push(grantId) } as never,
    audit: { record: async (entry: { event: string }) => void calls.audit.push(entry.event) } as never,
    generation: () => 0,
    exclusive: (_name, _waitMs, fn) => fn(),
    saveRetryDelaysMs: [0, 0, 0],
  });
  const get = () => Promise.resolve(source.get('g1', { subject: 'alice', clientId: 'c1' }));
  return { stored, calls, get };
}

const busy = () => Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });

describe('gateway › upstream refresh › the refreshed token is stored', () => {
  it('a save that meets the database busy is retried: U asked once, the rotated refresh token stored, the new access token used', async () => {
    const { stored, calls, get } = harness([busy(), Object.assign(new Error('Connection terminated unexpectedly'), {})]);
    expect(await get()).toMatchObject({ ok: true, accessToken: 'at-new' });
    expect(calls.refresh).toEqual(['rt-old']);
    expect(calls.saves).toBe(3);
    expect(stored.current).toMatchObject({ accessToken: 'at-new', refreshToken: 'rt-new' });
    expect(calls.audit).toEqual(['upstream.token_refreshed']);
  });

  it('a database that stays busy fails the request with its own error after the retries — never audited as a failed refresh at U, the grant not revoked', async () => {
    const { calls, get } = harness([busy(), busy(), busy(), busy(), busy()]);
    await expect(get()).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    expect(calls.refresh).toEqual(['rt-old']);
    expect(calls.saves).toBe(4); // the first attempt and three retries
    expect(calls.audit).toEqual([]);
    expect(calls.revoked).toEqual([]);
  });

  it('another database error is not retried', async () => {
    const { calls, get } = harness([Object.assign(new Error('value too long'), { code: '22001' })]);
    await expect(get()).rejects.toThrow('value too long');
    expect(calls.saves).toBe(1);
    expect(calls.audit).toEqual([]);
  });
});
