/**
 * U's token refresh on PostgreSQL with every lock connection of the process in use
 * (src/gateway/upstream-token.ts over src/db/pg-locks.ts; a real PgSql, a fake store, U and
 * revocation). Found by review: a refresh holds one of LOCK_POOL_MAX (4) lock connections while
 * it waits for U (up to UPSTREAM_TIMEOUT); a 5th concurrent refresh of another grant waited in
 * pg-pool's queue and, after the connect timeout (10 s, below REFRESH_LOCK_WAIT_MS), failed with
 * "timeout exceeded when trying to connect" — not a LockTimeoutError — so the gateway answered 503
 * although the stored U access token was still valid (refreshes start 60 s before expiry). Now that
 * wait is part of the lock wait: after REFRESH_LOCK_WAIT_MS the stored token is used while it is
 * valid, an expired one fails as U unreachable (504), and U is not asked for either grant.
 * The server's timings (connect timeout 10 s, the wait 15 s) on a fake clock, started once the
 * four refreshes hold their locks.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LOCK_POOL_MAX } from '../../src/db/pg-locks.js';
import { PgSql } from '../../src/db/pg-sql.js';
import { createUpstreamTokenSource, REFRESH_LOCK_WAIT_MS, REFRESH_SKEW_MS, type UpstreamTokenDeps } from '../../src/gateway/upstream-token.js';
import type { StoredUpstreamTokens, UpstreamTokenSet } from '../../src/store/upstream-tokens.js';
import { pgDatabasePerFile } from '../helpers/pg.js';
import { gate } from '../helpers/sql-driver-cases.js';

const cast = <T>(value: unknown): T => value as T;
const who = { subject: 'alice', clientId: 'client-1' };
const settle = () => new Promise((resolve) => setImmediate(resolve));

const db = pgDatabasePerFile('upstream_lock_pool');
let sql: PgSql;

beforeAll(() => {
  sql = new PgSql({ url: db.url, poolMax: 2, connectTimeoutMs: 10_000 }); // the server's connect timeout
});
afterAll(async () => {
  await sql?.close();
});
let answerU: (() => void) | undefined;
afterEach(() => {
  vi.useRealTimers();
  answerU?.(); // a failed test leaves no refresh holding a lock connection
});

function setup() {
  const rows = new Map<string, StoredUpstreamTokens>();
  const presented: string[] = [];
  const u = gate();
  let issued = 0;
  const store = {
    access: (grantId: string) => rows.get(grantId),
    get: async (grantId: string) => rows.get(grantId),
    replace: async (grantId: string, version: string, tokens: UpstreamTokenSet) => {
      const row = rows.get(grantId);
      if (!row || row.version !== version) return null;
      rows.set(grantId, { ...row, ...tokens, version: `${version}+` });
      return `${version}+`;
    },
  };
  const deps: UpstreamTokenDeps = {
    store: cast(store),
    upstream: cast(() => ({
      refresh: async (refreshToken: string) => {
        presented.push(refreshToken);
        await u.wait; // U is slow: the refresh keeps its lock connection meanwhile
        issued += 1;
        return { accessToken: `new-at-${issued}`, refreshToken: `new-rt-${issued}`, expiresAt: Date.now() + 3_600_000 };
      },
    })),
    revocation: cast({ revokeGrant: async () => true, revokeUnkept: () => undefined, onRevoked: () => undefined }),
    audit: cast({ record: async () => undefined }),
    generation: () => 1,
    exclusive: (name, waitMs, fn) => sql.exclusive(name, waitMs, fn),
    log: cast({ warn: () => undefined, error: () => undefined }),
  };
  const put = (grantId: string, expiresAt: number) => rows.set(grantId, { subject: 'alice', accessToken: `at-${grantId}`, refreshToken: `rt-${grantId}`, expiresAt, version: 'v1' });
  return { source: createUpstreamTokenSource(deps), presented, put, answerU: u.open };
}

describe('PostgreSQL: a refresh while every lock connection of the process is held by slow refreshes', () => {
  it('a still-valid stored token is used, an expired one fails as unreachable; U is not asked; the lock connections serve again once free', async () => {
    const t = setup();
    answerU = t.answerU;
    const holders = Array.from({ length: LOCK_POOL_MAX }, (_, i) => `slow${i}`);
    for (const g of holders) t.put(g, Date.now() + REFRESH_SKEW_MS / 2);
    const slow = holders.map((g) => t.source.get(g, who));
    for (let i = 0; i < 500 && t.presented.length < LOCK_POOL_MAX; i++) await new Promise((resolve) => setTimeout(resolve, 10)); // at most 5 s
    expect(t.presented).toHaveLength(LOCK_POOL_MAX); // each holds its lock and a lock connection, waiting for U

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    // Due (less than REFRESH_SKEW_MS left) yet valid past the whole wait; and one already expired.
    t.put('valid', Date.now() + REFRESH_SKEW_MS - 1_000);
    t.put('expired', Date.now() - 1_000);
    const valid = Promise.resolve(t.source.get('valid', who));
    const expired = Promise.resolve(t.source.get('expired', who));
    valid.catch(() => undefined);
    expired.catch(() => undefined);
    await settle();
    await vi.advanceTimersByTimeAsync(REFRESH_LOCK_WAIT_MS);
    await expect(valid).resolves.toMatchObject({ ok: true, accessToken: 'at-valid' });
    await expect(expired).resolves.toEqual({ ok: false, failure: 'unreachable' });
    expect([...t.presented].sort()).toEqual(holders.map((g) => `rt-${g}`));
    vi.useRealTimers();

    t.answerU();
    for (const result of await Promise.all(slow)) expect(result).toMatchObject({ ok: true, accessToken: expect.stringMatching(/^new-at-/) });
    expect(await t.source.get('expired', who)).toMatchObject({ ok: true, accessToken: expect.stringMatching(/^new-at-/) });
    expect(t.presented.at(-1)).toBe('rt-expired');
  });
});
