/**
 * A refreshed upstream token whose save fails is not lost (GW-14, UP-08, RFC 9700 §4.14.2).
 * Once U has answered a refresh, its old refresh token is spent: U rotates it and treats a reuse
 * as theft (GitHub; here the fake U with `revokeOnRefreshReuse`, which then revokes the user's
 * grant). The token source used to report a save failing at that moment (SQLite busy past its
 * busy timeout, PostgreSQL restarting) as U's failure and drop U's answer, so the next refresh
 * sent U the spent token and the user's grant died. And its save was an upsert, so a refresh that
 * finished after the grant was revoked re-created the row of a revoked grant, never revoked at U.
 * Now (src/gateway/upstream-token.ts):
 *   - the request gets U's new token, the process holds it (every request and the next refresh
 *     use it) and saves it in the background, under the grant's lock, without SQLite's busy wait;
 *   - a save only replaces the row it read (UpstreamTokenStore.replace): for a grant revoked
 *     meanwhile nothing is created and U is asked to revoke the token it just issued;
 *   - shutdown tries the save once more.
 * The failure is injected in the store's `replace` (a SQLITE_BUSY or 57P01 error, as each engine
 * raises it), and on SQLite also as the real thing: another connection holding the write lock.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows, type TestApp } from '../helpers/app.js';
import { Browser, authorizeClient, startReplica, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';
import { onPostgres } from '../helpers/engine.js';
import { whileSqliteLocked, type FaultStack } from './fault-stack.js';
import type { UpstreamTokenSet } from '../../src/store/upstream-tokens.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ upstreamRevokesOnRefreshReuse: true });
});
afterAll(() => stack?.close());

const unavailable = () => Object.assign(new Error('the database is unavailable (test)'), { code: onPostgres ? '57P01' : 'SQLITE_BUSY' });

/**
 * Wrap `app`'s upstream-token store's replace: `before` runs first (once), then the first
 * `failures` calls throw as the database does when it is unavailable; every call's tokens are
 * recorded. Returns the record and the undo.
 */
function faultyReplace(app: TestApp, failures: number, before?: () => Promise<unknown>) {
  const store = app.runtime.stores.upstreamTokens;
  const real = store.replace;
  const attempts: UpstreamTokenSet[] = [];
  let left = failures;
  store.replace = async (...args: Parameters<typeof real>) => {
    attempts.push(args[2]);
    const hook = before;
    before = undefined;
    await hook?.();
    if (left > 0) {
      left -= 1;
      throw unavailable();
    }
    return real(...args);
  };
  return { attempts, restore: () => (store.replace = real) };
}

/** A user authorized with U's token cached by the gateway; its grant, and what the source is asked with. */
async function authorized(login: string) {
  const { tokens, clientId } = await authorizeClient(stack, new Browser(login), { login });
  const token = tokens.body.access_token as string;
  const sessionId = await openSession(`${stack.app.url}/mcp`, token);
  const [consent] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ? AND revoked_at IS NULL', clientId);
  const grantId = consent.grant_id as string;
  expect((await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami')).status).toBe(200);
  return { token, sessionId, grantId, clientId, who: { subject: login, clientId } };
}

const source = () => stack.app.runtime.gateway.upstreamTokens;
const stored = (grantId: string) => stack.app.runtime.stores.upstreamTokens.get(grantId);
const newestIssued = (sub: string) => stack.upstream.issued.filter((t) => t.sub === sub).at(-1)?.token as string;
const refreshes = () => stack.upstream.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length;
const expireStored = (grantId: string) => stack.app.runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [grantId]);

describe('a refreshed upstream token whose save fails', () => {
  it('is used by the request, held by the process, saved in the background; U never sees a refresh token twice', async () => {
    const { token, sessionId, grantId } = await authorized('save-fails');
    const before = await stored(grantId);
    await expireStored(grantId);
    const fault = faultyReplace(stack.app, 1);
    let first: Awaited<ReturnType<typeof callTool>>;
    try {
      first = await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami');
    } finally {
      fault.restore();
    }
    // The request got U's new token, though the database did not take it.
    expect(first.status).toBe(200);
    const fresh = newestIssued('save-fails');
    expect(first.messages[0].result.structuredContent.upstream_token_sha256).toBe(sha(fresh));
    expect(fault.attempts.map((t) => t.accessToken)).toEqual([fresh]);
    expect((await stored(grantId))?.version).toBe(before?.version);
    expect(source().unsavedCount).toBe(1);
    // The next request uses the held token without asking U again.
    const refreshesBefore = refreshes();
    const second = await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami');
    expect(second.messages[0].result.structuredContent.upstream_token_sha256).toBe(sha(fresh));
    expect(refreshes()).toBe(refreshesBefore);
    // The background save (called here instead of waiting for its timer) stores it.
    expect(await source().saveHeld()).toBe(0);
    const after = await stored(grantId);
    expect(after?.accessToken).toBe(fresh);
    expect(after?.refreshToken).toBe(fault.attempts[0]?.refreshToken);
    expect(after?.refreshToken).not.toBe(before?.refreshToken);
    await stack.app.runtime.audit.flush();
    const saved = (await auditEvents(stack.app)).filter((e) => e.event === 'upstream.token_refreshed' && JSON.parse(String(e.details)).grant_id === grantId);
    expect(saved).toHaveLength(1);
    expect(JSON.parse(String(saved[0]?.details)).saved_after_ms).toBeGreaterThanOrEqual(0);
    // The next refresh sends U the rotated refresh token: no reuse, nothing revoked.
    await expireStored(grantId);
    const third = await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami');
    expect(third.status).toBe(200);
    expect(third.messages[0].result.structuredContent.upstream_token_sha256).toBe(sha(newestIssued('save-fails')));
    expect(stack.upstream.refreshReuses).toEqual([]);
    expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_at: null }]);
  });

  it('held and due again before it is saved: the next refresh sends U the held refresh token, and its save replaces the row', async () => {
    const { grantId, who } = await authorized('held-then-due');
    const before = await stored(grantId);
    const fault = faultyReplace(stack.app, 1);
    const first = await source().get(grantId, who, true);
    expect(first).toMatchObject({ ok: true, accessToken: fault.attempts[0]?.accessToken });
    expect(source().unsavedCount).toBe(1);
    // Forced again (R refused the token): U is sent the held refresh token, not the stored, spent one.
    const second = await source().get(grantId, who, true);
    fault.restore();
    expect(second).toMatchObject({ ok: true, accessToken: newestIssued('held-then-due') });
    expect(stack.upstream.refreshReuses).toEqual([]);
    expect(source().unsavedCount).toBe(0);
    const after = await stored(grantId);
    expect(after?.accessToken).toBe(newestIssued('held-then-due'));
    expect(after?.version).not.toBe(before?.version);
    expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_at: null }]);
  });

  it('for a grant revoked before the background save: no row is created, U is asked to revoke the held token', async () => {
    const { grantId, who } = await authorized('held-then-revoked');
    const fault = faultyReplace(stack.app, 1);
    await source().get(grantId, who, true);
    fault.restore();
    const held = fault.attempts[0] as UpstreamTokenSet;
    expect(await stack.app.runtime.revocation.revokeGrant(grantId, 'admin')).toBe(true);
    expect(await source().saveHeld()).toBe(0);
    await stack.app.runtime.revocation.settled();
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toEqual([]);
    expect(stack.upstream.revokedTokens).toContain(held.refreshToken);
    // The held token is no longer offered either.
    expect(await source().get(grantId, who)).toEqual({ ok: false, failure: 'revoked' });
  });

  it('tried once more at shutdown: a replica disposed while it holds a refreshed token saves it first', async () => {
    const replica = await startReplica(stack);
    try {
      const { grantId, who } = await authorized('held-at-shutdown');
      const fault = faultyReplace(replica, 1);
      expect(await replica.runtime.gateway.upstreamTokens.get(grantId, who, true)).toMatchObject({ ok: true });
      expect(replica.runtime.gateway.upstreamTokens.unsavedCount).toBe(1);
      await replica.runtime.dispose();
      fault.restore();
      expect((await stored(grantId))?.accessToken).toBe(fault.attempts[0]?.accessToken);
    } finally {
      await replica.close();
    }
  });
});

describe('a refresh whose grant is revoked while U answers', () => {
  it('creates no row and asks U to revoke the token it just issued; the request gets revoked', async () => {
    const { grantId, who } = await authorized('revoked-meanwhile');
    // U has answered; the revocation commits before the refresh's result is saved.
    const fault = faultyReplace(stack.app, 0, () => stack.app.runtime.revocation.revokeGrant(grantId, 'admin'));
    let result: Awaited<ReturnType<ReturnType<typeof source>['get']>>;
    try {
      result = await source().get(grantId, who, true);
    } finally {
      fault.restore();
    }
    expect(result).toEqual({ ok: false, failure: 'revoked' });
    await stack.app.runtime.revocation.settled();
    expect(await rows(stack.app, 'SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', grantId)).toEqual([]);
    const issued = fault.attempts[0] as UpstreamTokenSet;
    expect(issued.accessToken).toBe(newestIssued('revoked-meanwhile'));
    expect(stack.upstream.revokedTokens.at(-1)).toBe(issued.refreshToken);
    expect(source().unsavedCount).toBe(0);
  });
});

describe.skipIf(onPostgres)('the background save on SQLite', () => {
  it("never waits for SQLite's busy timeout: with another connection holding the write lock it answers at once and keeps the token; it saves once the lock is gone", async () => {
    const { grantId, who } = await authorized('busy-background');
    const fault = faultyReplace(stack.app, 1);
    await source().get(grantId, who, true);
    fault.restore();
    const left = await whileSqliteLocked(stack as FaultStack, async () => {
      const started = performance.now();
      const n = await source().saveHeld();
      // SQLite's busy timeout is 5 s (src/db/open.ts); a busy wait would show as one.
      expect(performance.now() - started).toBeLessThan(2500);
      return n;
    });
    expect(left).toBe(1);
    expect((await stored(grantId))?.accessToken).not.toBe(fault.attempts[0]?.accessToken);
    expect(await source().saveHeld()).toBe(0);
    expect((await stored(grantId))?.accessToken).toBe(fault.attempts[0]?.accessToken);
  });
});
