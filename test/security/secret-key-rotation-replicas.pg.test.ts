/**
 * Rotating SECRET_KEY one replica at a time (README "Rotating SECRET_KEY", src/crypto/keys.ts).
 * Review: a replica restarted with SECRET_KEY=K2, SECRET_KEY_PREVIOUS=K1 seals new values under K2
 * — upstream tokens, interactions, sessions, upstream logins' transactions — and signs cookies with
 * it, which a replica still on K1 alone cannot open. The two-step rollout: first every replica gets
 * SECRET_KEY=K1, SECRET_KEY_PREVIOUS=K2 (it still seals under K1 and can already open K2's values),
 * then every replica SECRET_KEY=K2, SECRET_KEY_PREVIOUS=K1.
 *
 * Two runtimes on one PostgreSQL database behind a round-robin balancer (test/helpers/balancer.ts,
 * their shared PUBLIC_URL), so each request of a flow lands on the other replica than the one
 * before; restarted with new keys one at a time, as an operator rolls a deployment.
 * - Between the steps (A on K2/K1, B on K1/K2) a whole authorization (registration, P's and U's
 *   pages and cookies, the sealed interaction, U's login transaction, the consent and its sealed U
 *   token, the code) alternates between them; U's token refreshed on A (sealed under K2) is
 *   forwarded by B, and refreshed on B (under K1) by A; a grant from before the rotation works on
 *   both throughout and after step 2.
 * - The control, a one-step rollout (B on K1 alone): B cannot open the U token A sealed under K2
 *   (the request fails, R is not contacted); revoking that grant on B completes P's revocation
 *   (the row deleted, the next request on A refused) but cannot ask U to revoke the token: U gets
 *   no revocation request from B, which logs a warning with the grant id and the key id and no
 *   token, and leaves the sealed token in upstream_revocations, due again in 10 minutes; A, which
 *   has K2, asks U at its first housekeeping after that (before 2026-12-08 the token was dropped,
 *   U never asked, an error logged).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort, startTestApp, TEST_SECRET_KEY, type TestApp } from '../helpers/app.js';
import { startBalancer, type Balancer } from '../helpers/balancer.js';
import { fakeUpstreamEnv, startFakeOidcUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startFakeMcp, type FakeMcp } from '../helpers/fake-mcp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/pg.js';
import { Browser, authorizeClient, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';
import { KeyRing } from '../../src/crypto/keys.js';
import { RETRY_FIRST_MS } from '../../src/consent/upstream-revocations.js';

const K1 = TEST_SECRET_KEY;
const K2 = randomBytes(32).toString('base64');
const kid = (key: string) => new KeyRing(Buffer.from(key, 'base64')).current.kid;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let db: TestDatabase;
let balancer: Balancer;
let upstream: FakeUpstream;
let mcp: FakeMcp;
let dir: string;
const ports: number[] = [];
const apps: TestApp[] = [];

function start(i: number, keys: { SECRET_KEY: string; SECRET_KEY_PREVIOUS?: string }): Promise<TestApp> {
  return startTestApp({
    port: ports[i],
    dir,
    env: {
      DATABASE_URL: db.url,
      PUBLIC_URL: balancer.url,
      ...fakeUpstreamEnv(upstream),
      MCP_UPSTREAM_URL: mcp.url,
      TRUST_PROXY: 'loopback',
      ...keys,
    },
  });
}

/** Roll replica i to new keys: stopped, started again on the same port, database and data directory. */
async function restart(i: number, keys: { SECRET_KEY: string; SECRET_KEY_PREVIOUS?: string }): Promise<void> {
  await apps[i]?.close();
  apps[i] = await start(i, keys);
}

beforeAll(async () => {
  db = await createTestDatabase('key-rotation');
  dir = mkdtempSync(join(tmpdir(), 'key-rotation-'));
  for (let i = 0; i < 3; i++) ports.push(await freePort());
  balancer = await startBalancer(() => ports.slice(0, 2));
  upstream = await startFakeOidcUpstream({ callbackUrl: `${balancer.url}/upstream/callback` });
  mcp = await startFakeMcp();
  for (let i = 0; i < 2; i++) apps.push(await start(i, { SECRET_KEY: K1 }));
}, 60_000);
afterAll(async () => {
  for (const app of apps) await app.close();
  await balancer?.close();
  await upstream?.close();
  await mcp?.close();
  await db?.drop();
});

const [A, B] = [0, 1];
const front = () => ({ app: { url: balancer.url } }) as unknown as Stack;

/** A grant authorized through the balancer (its requests alternate between the replicas). */
async function grant(login: string) {
  const { tokens, clientId } = await authorizeClient(front(), new Browser(), { login });
  const token = tokens.body.access_token as string;
  const sessionId = await openSession(`${balancer.url}/mcp`, token);
  const [consent] = await (apps[A] as TestApp).runtime.stores.consents.unrevokedForClient(clientId);
  return { login, token, sessionId, grantId: consent?.grant_id as string, consentId: consent?.id as number };
}
type Grant = Awaited<ReturnType<typeof grant>>;

/** A tool call on replica i: its status, and the U token R received (as its SHA-256). */
async function on(i: number, g: Grant) {
  const res = await callTool(`${(apps[i] as TestApp).url}/mcp`, g.token, g.sessionId, 'whoami');
  return { status: res.status, upstreamToken: res.status === 200 ? (res.messages[0].result.structuredContent.upstream_token_sha256 as string) : undefined };
}
const newestAtU = (login: string) => sha(upstream.issued.filter((t) => t.sub === login).at(-1)?.token as string);
const sealedUnder = async (g: Grant) => {
  const [row] = await (apps[A] as TestApp).runtime.sql.all<{ sealed_access: string }>('SELECT sealed_access FROM upstream_tokens WHERE grant_id = ?', [g.grantId]);
  return row?.sealed_access.split('.')[1];
};
/** U's token found expired on replica i's next request, which refreshes it there. */
const expire = (g: Grant) => (apps[A] as TestApp).runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [g.grantId]);

let before: Grant;
let during: Grant;

describe('rotating SECRET_KEY one replica at a time', () => {
  it('two steps (K1 + previous K2 everywhere, then K2 + previous K1): every value sealed or signed on one replica opens on the other at every moment', async () => {
    before = await grant('before');
    expect(await sealedUnder(before)).toBe(kid(K1));

    // Step 1, one replica after the other: the previous key is the NEW one; both still seal under K1.
    await restart(A, { SECRET_KEY: K1, SECRET_KEY_PREVIOUS: K2 });
    expect((await on(A, before)).status).toBe(200);
    await restart(B, { SECRET_KEY: K1, SECRET_KEY_PREVIOUS: K2 });

    // Step 2, half done: A seals under K2, B still under K1.
    await restart(A, { SECRET_KEY: K2, SECRET_KEY_PREVIOUS: K1 });
    const mark = balancer.log.length;
    during = await grant('during');
    const served = balancer.log.slice(mark);
    expect(served.filter((r) => r.status >= 500)).toEqual([]);
    expect(new Set(served.map((r) => r.backend))).toEqual(new Set([A, B]));
    for (const g of [before, during]) for (const i of [A, B]) expect(await on(i, g)).toEqual({ status: 200, upstreamToken: newestAtU(g.login) });

    await expire(during);
    expect(await on(A, during)).toEqual({ status: 200, upstreamToken: newestAtU('during') }); // refreshed on A
    expect(await sealedUnder(during)).toBe(kid(K2));
    expect(await on(B, during)).toEqual({ status: 200, upstreamToken: newestAtU('during') });
    await expire(during);
    expect(await on(B, during)).toEqual({ status: 200, upstreamToken: newestAtU('during') }); // refreshed on B
    expect(await sealedUnder(during)).toBe(kid(K1));
    expect(await on(A, during)).toEqual({ status: 200, upstreamToken: newestAtU('during') });

    // Step 2 done.
    await restart(B, { SECRET_KEY: K2, SECRET_KEY_PREVIOUS: K1 });
    for (const g of [before, during]) for (const i of [A, B]) expect(await on(i, g)).toEqual({ status: 200, upstreamToken: newestAtU(g.login) });
    const logged = apps.flatMap((app) => app.logLines).filter((l) => /"level":(50|60)/.test(l));
    expect(logged).toEqual([]);
    expect(upstream.revocations).toEqual([]);
  });

  it('the control, one step: B on K1 alone cannot open what A sealed under K2; revoked on B, P revokes all the same, and U is asked by A, which has the key', async () => {
    // Back to K1 (step 1's keys, then B on K1 alone), and A moved to K2 in one step. (B could not
    // even start now: A re-sealed the signing keys under K2 at its start.)
    await restart(A, { SECRET_KEY: K1, SECRET_KEY_PREVIOUS: K2 });
    await restart(B, { SECRET_KEY: K1 });
    await restart(A, { SECRET_KEY: K2, SECRET_KEY_PREVIOUS: K1 });
    await expect(start(2, { SECRET_KEY: K1 })).rejects.toThrow(/sealed under another SECRET_KEY/);
    await expire(during);
    expect((await on(A, during)).status).toBe(200);
    expect(await sealedUnder(during)).toBe(kid(K2));
    const at = upstream.issued.filter((t) => t.sub === 'during').at(-1)?.token as string;
    const reachedR = mcp.received.length;
    expect((await on(B, during)).status).not.toBe(200);
    expect(mcp.received.length).toBe(reachedR);

    const b = apps[B] as TestApp;
    const linesBefore = b.logLines.length;
    await b.runtime.ops.revokeConsent(during.consentId, { actor: 'admin', subject: 'root' });
    await b.runtime.revocation.settled();
    expect(await b.runtime.sql.all('SELECT grant_id FROM upstream_tokens WHERE grant_id = ?', [during.grantId])).toEqual([]);
    expect((await on(A, during)).status).toBe(401);
    expect(upstream.revocations).toEqual([]);
    const warnings = b.logLines.slice(linesBefore).filter((l) => /"level":(40|50)/.test(l));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"level":40');
    expect(warnings[0]).toContain(during.grantId);
    expect(warnings[0]).toContain(kid(K2));
    expect(warnings[0]).toContain('sealed under a SECRET_KEY this process does not have; left for a process that can');
    expect(warnings[0]).not.toContain(at);
    expect(warnings[0]).not.toContain('v1.'); // nor a sealed value
    // Still pending, B's try not counted, due again a retry interval later (for any replica).
    const pending = () => b.runtime.sql.all<{ attempts: number; next_at: number }>('SELECT attempts, next_at FROM upstream_revocations WHERE grant_id = ?', [during.grantId]);
    const [row] = await pending();
    expect(row).toMatchObject({ attempts: 0 });
    expect(row!.next_at - Date.now()).toBeGreaterThan(RETRY_FIRST_MS - 60_000);
    vi.useFakeTimers({ toFake: ['Date'], now: row!.next_at });
    try {
      // B's own housekeeping cannot send it; A, which has K2, asks U, once, and the row goes.
      expect(await b.runtime.revocation.atUpstream.sendDue()).toBe(0);
      expect(upstream.revocations).toEqual([]);
      vi.setSystemTime(row!.next_at + RETRY_FIRST_MS);
      expect(await (apps[A] as TestApp).runtime.revocation.atUpstream.sendDue()).toBe(1);
    } finally {
      vi.useRealTimers();
    }
    expect(upstream.revocations).toHaveLength(1);
    expect(await pending()).toEqual([]);
  });
});
