/**
 * Issue 11 (DESIGN §8, GW-14, UP-08, RFC 9700 §4.14.2), "replicas refreshing one upstream grant
 * at once trip U's refresh-token reuse detection": the single-flight of U's token refresh was per
 * process, so two replicas finding the same grant's upstream token expired each sent U the same
 * refresh token. A U that rotates refresh tokens and treats a reused one as theft (GitHub; here
 * the fake U with `revokeOnRefreshReuse`) then revokes the user's grant, and P with it. Now the
 * refresh runs under a lock across replicas (src/gateway/upstream-token.ts): one replica
 * refreshes, the others wait and use the token it stored.
 *
 * PostgreSQL (TEST_ENGINE=postgres): two replicas — two runtimes on one database, the same
 * PUBLIC_URL, U and R — hit at once. SQLite (one process): one replica, the same concurrent burst.
 * U's token endpoint answers slowly (300 ms), so every request finds the token expired while the
 * first refresh is still in flight.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows, type TestApp } from '../helpers/app.js';
import { Browser, authorizeClient, startReplica, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';
import { onPostgres } from '../helpers/engine.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
let stack: Stack;
let replicas: TestApp[];

beforeAll(async () => {
  stack = await startStack({ upstreamRevokesOnRefreshReuse: true });
  replicas = [stack.app];
  if (onPostgres) {
    replicas.push(await startReplica(stack));
  }
});
afterAll(async () => {
  for (const replica of replicas?.slice(1) ?? []) await replica.close();
  await stack?.close();
});

const refreshes = () => stack.upstream.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length;

describe('replicas refreshing one upstream grant at once trip U\'s refresh-token reuse detection', () => {
  it(`${onPostgres ? 'two replicas' : 'one process'}, 12 requests at once with U's token expired: U sees one refresh, every request succeeds with the new token, nothing is revoked`, async () => {
    const { tokens, clientId } = await authorizeClient(stack, new Browser(), { login: 'rotating' });
    const token = tokens.body.access_token as string;
    const sessionId = await openSession(`${stack.app.url}/mcp`, token);
    const [consent] = await stack.app.runtime.stores.consents.unrevokedForClient(clientId);
    const grantId = consent?.grant_id as string;
    // Every replica has the (still valid) token in its cache before it expires.
    for (const replica of replicas) expect((await callTool(`${replica.url}/mcp`, token, sessionId, 'whoami')).status).toBe(200);
    await stack.app.runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [grantId]);
    const before = refreshes();
    stack.upstream.setTokenEndpointFault({ delayMs: 300 });
    let results: Awaited<ReturnType<typeof callTool>>[];
    try {
      results = await Promise.all(Array.from({ length: 12 }, (_, i) => callTool(`${(replicas[i % replicas.length] as TestApp).url}/mcp`, token, sessionId, 'whoami', {}, i + 100)));
    } finally {
      stack.upstream.setTokenEndpointFault(undefined);
    }
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
    expect(stack.upstream.refreshReuses).toEqual([]);
    expect(refreshes() - before).toBe(1);
    const newest = stack.upstream.issued.filter((t) => t.sub === 'rotating').at(-1)?.token as string;
    expect(new Set(results.map((r) => r.messages[0].result.structuredContent.upstream_token_sha256))).toEqual(new Set([sha(newest)]));
    // Nothing revoked: P's consent stands, and the grant keeps working on every replica.
    expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_at: null }]);
    for (const replica of replicas) expect((await callTool(`${replica.url}/mcp`, token, sessionId, 'whoami')).status).toBe(200);
    for (const replica of replicas) await replica.runtime.audit.flush();
    const events = (await auditEvents(stack.app)).map((e) => e.event);
    expect(events.filter((e) => e === 'upstream.token_refreshed')).toHaveLength(1);
    expect(events.filter((e) => e === 'upstream.refresh_failed' || e === 'consent.revoked')).toEqual([]);
  });
});
