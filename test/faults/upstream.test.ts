/**
 * Failing dependencies (issue 13 §3): the upstream identity provider U — down, slower than
 * UPSTREAM_TIMEOUT (1 s here), answering 5xx, answering garbage instead of JSON, sending an ID
 * token with a broken signature or one that has expired, and changing its discovery document.
 * For each, at the step where P talks to U (discovery before the consent page, the code exchange
 * at the callback, the refresh at the gateway):
 *   - the user or client gets the documented answer within a bound: the consent page is 503
 *     "Temporarily unavailable"; the callback ends on "could not be completed" (502, the client later
 *     gets server_error); the gateway answers 504 JSON-RPC when a due refresh cannot reach U;
 *   - nothing is half-written: no consent, grant, code, token or upstream token, and the audit
 *     row names the reason;
 *   - no file descriptor, socket, timer or connection is left behind (counted before and after);
 *   - when U comes back, the same path works again without a restart.
 * An ID token with a broken signature is not among the refusals: received directly from U's token
 * endpoint it is authenticated by that connection (OIDC Core §3.1.3.7; openid-client checks its
 * claims, not its signature); a validly signed one with the wrong audience or expired is refused.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { auditHead, auditRowsSince, rowCounts } from '../helpers/db-probe.js';
import { Browser, drive, redeem } from '../helpers/stack.js';
import { openSession, mcpPost } from '../helpers/mcp-http.js';
import type { Fault } from '../helpers/fault-proxy.js';
import { baseline, expectNoLeaks, startFaultStack, timed, toCallback, UPSTREAM_TIMEOUT_MS, type FaultStack } from './fault-stack.js';

let stack: FaultStack;
let clientId: string;
let browsers = 0;

beforeAll(async () => {
  stack = await startFaultStack();
  clientId = (await registerClient(stack.app)).client_id;
  await completeAuthorization(); // U's metadata loaded, pools warm: the baseline every case compares with
});
afterAll(() => stack.close());
afterEach(async () => {
  vi.useRealTimers();
  await stack.u.setFault(undefined);
});

/** A whole authorization through U, as the recovery check: code at the client, tokens at /token. */
async function completeAuthorization(): Promise<Record<string, any>> {
  const browser = new Browser(`ok-${browsers++}`);
  const { callback, auth } = await toCallback(stack, browser, clientId);
  const result = await drive(browser, callback, auth.redirectUri);
  const code = result.callback.searchParams.get('code');
  expect(code, `recovery: ${result.callback.href}`).toBeTruthy();
  const tokens = await redeem(stack.app, clientId, code as string, auth.verifier, auth.redirectUri);
  expect(tokens.status).toBe(200);
  return tokens.body;
}

/** What a failed sign-in must not leave: a consent, a grant, codes, tokens, U's tokens. */
const written = async () => {
  const c = await rowCounts(stack.app);
  return { consents: c.consents, Grant: c.Grant, AuthorizationCode: c.AuthorizationCode, AccessToken: c.AccessToken, RefreshToken: c.RefreshToken, upstream_tokens: c.upstream_tokens };
};

/** Up to U's callback normally, then `fault` at U while P redeems the code. */
async function callbackUnder(fault: Fault & { paths?: RegExp }, label: string) {
  const browser = new Browser(`${label}-${browsers++}`);
  const { callback } = await toCallback(stack, browser, clientId);
  const before = await baseline(stack);
  const rows = await written();
  const from = await auditHead(stack.app);
  await stack.u.setFault(fault);
  const { value: page, ms } = await timed(() => browser.navigate(callback, { initiator: stack.upstream.issuer }));
  await stack.u.setFault(undefined);
  expect(await written(), `${label}: nothing half-written`).toEqual(rows);
  const audit = (await auditRowsSince(stack.app, from)).map((r) => `${r.event}:${r.reason}`);
  await expectNoLeaks(stack, before, label);
  return { page, ms, audit };
}

describe('U fails at the code exchange (the callback)', () => {
  const cases: [string, Fault & { paths?: RegExp }, string, number][] = [
    ['U down', { kind: 'down' }, 'unreachable', 1000],
    ['U slower than UPSTREAM_TIMEOUT', { kind: 'hang', paths: /^\/token/ }, 'unreachable', UPSTREAM_TIMEOUT_MS + 1500],
    ['U answering 503', { kind: 'status', status: 503, paths: /^\/token/ }, 'exchange_failed', 1000],
    ['U answering garbage instead of JSON', { kind: 'garbage', paths: /^\/token/ }, 'exchange_failed', 1000],
  ];
  for (const [label, fault, reason, bound] of cases) {
    it(`${label}: 502 "could not be completed" within ${bound} ms, reason ${reason}, nothing written, nothing leaked, then recovers`, async () => {
      const { page, ms, audit } = await callbackUnder(fault, label);
      expect(page.status).toBe(502);
      expect(page.html).toContain('The sign-in at Fake Upstream could not be completed. No access was granted.');
      expect(ms).toBeLessThan(bound);
      if (fault.kind === 'hang') expect(ms).toBeGreaterThanOrEqual(UPSTREAM_TIMEOUT_MS - 50);
      expect(audit).toContain(`upstream.callback_failed:${reason}`);
      await completeAuthorization();
    });
  }

  it('an ID token for another audience (validly signed by U): 502, exchange_failed, nothing written, then recovers', async () => {
    const retarget = async (body: Record<string, string>) => {
      const claims = JSON.parse(Buffer.from((body.id_token as string).split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
      return { ...body, id_token: await stack.upstream.signIdToken({ ...claims, aud: 'another-client' }) };
    };
    const { page, ms, audit } = await callbackUnder({ kind: 'transform', paths: /^\/token/, json: retarget }, 'wrong-audience');
    expect(page.status).toBe(502);
    expect(ms).toBeLessThan(1000);
    expect(audit).toContain('upstream.callback_failed:exchange_failed');
    await completeAuthorization();
  });

  it('an expired ID token (validly signed by U, its own nonce): 502, exchange_failed, nothing written, then recovers', async () => {
    const expire = async (body: Record<string, string>) => {
      const claims = JSON.parse(Buffer.from((body.id_token as string).split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
      const now = Math.floor(Date.now() / 1000);
      return { ...body, id_token: await stack.upstream.signIdToken({ ...claims, iat: now - 7200, exp: now - 3600 }) };
    };
    const { page, ms, audit } = await callbackUnder({ kind: 'transform', paths: /^\/token/, json: expire }, 'expired');
    expect(page.status).toBe(502);
    expect(ms).toBeLessThan(1000);
    expect(audit).toContain('upstream.callback_failed:exchange_failed');
    expect(
      stack.app.logLines.some((l) => l.includes('upstream callback failed') && /exp/.test(l)),
      'the log names the expiry',
    ).toBe(true);
    await completeAuthorization();
  });
});

// U changing its discovery document (a moved token endpoint): test/faults/upstream-discovery-change.test.ts.

describe('U down before P has its metadata', () => {
  it('the consent page is a 503 "Temporarily unavailable, try again in a moment" within a bound, /readyz is 503, nothing is written; both recover when U is back', async () => {
    await stack.u.setFault({ kind: 'down' });
    await stack.restart(); // a fresh runtime: U's metadata not loaded yet
    const rows = await written();
    const browser = new Browser(`cold-${browsers++}`);
    const { value: page, ms } = await timed(() =>
      browser.navigate(
        `${stack.app.url}/authorize?${new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: 'http://127.0.0.1:33418/callback', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 's' })}`,
      ),
    );
    expect(ms).toBeLessThan(2000);
    expect(page.status, page.html.slice(0, 300)).toBe(503);
    expect(page.html).toMatch(/Temporarily unavailable[\s\S]*Try again in a moment/);
    const ready = await fetch(`${stack.app.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, checks: { database: true, upstream: false } });
    expect(await written()).toEqual(rows);
    await stack.u.setFault(undefined);
    expect((await fetch(`${stack.app.url}/readyz`)).status).toBe(200);
    await completeAuthorization();
  });
});

describe('U fails when the gateway must refresh its token', () => {
  let fast: FaultStack;
  beforeAll(async () => {
    fast = await startFaultStack({ upstreamAccessTokenTtl: 5 }); // U's tokens are always due for refresh (REFRESH_SKEW_MS)
  });
  afterAll(() => fast.close());

  for (const [label, fault, bound] of [
    ['U down', { kind: 'down' }, 1000],
    ['U slower than UPSTREAM_TIMEOUT', { kind: 'hang', paths: /^\/token/ }, UPSTREAM_TIMEOUT_MS + 1500],
  ] as [string, Fault & { paths?: RegExp }, number][]) {
    it(`${label}: 504 JSON-RPC within ${bound} ms once U's token has expired, the grant kept, nothing leaked; works again when U is back`, async () => {
      const saved = stack;
      stack = fast;
      try {
        const id = (await registerClient(fast.app)).client_id;
        clientId = id;
        const tokens = await completeAuthorization();
        const mcp = `${fast.app.url}/mcp`;
        const session = await openSession(mcp, tokens.access_token);
        const before = await baseline(fast);
        const rows = await written();
        await fast.u.setFault(fault);
        vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 10_000 }); // U's token (5 s) has expired
        const { value: res, ms } = await timed(() => mcpPost(mcp, tokens.access_token, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': session }));
        vi.useRealTimers();
        await fast.u.setFault(undefined);
        expect(res.status).toBe(504);
        expect(JSON.parse(res.text)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'The upstream identity provider is not available' } });
        expect(ms).toBeLessThan(bound);
        expect(await written(), 'the grant and its tokens are kept').toEqual(rows);
        await expectNoLeaks(fast, before, label);
        const again = await mcpPost(mcp, tokens.access_token, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { 'mcp-session-id': session });
        expect(again.status).toBe(200);
      } finally {
        stack = saved;
      }
    });
  }
});
