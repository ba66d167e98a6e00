/**
 * Found by the failing-dependency suite (issue 13 §3): U slower than UPSTREAM_TIMEOUT was not
 * recognised as "U did not answer". openid-client reports its own timeout with the code
 * OAUTH_TIMEOUT (the abort in `cause`), which src/upstream/presets.ts did not count as a network
 * failure, so
 *   - the callback audited `upstream.callback_failed` with reason `exchange_failed` (as if U had
 *     refused the code) instead of `unreachable`;
 *   - the gateway, needing a refresh, answered 502 "failed" instead of 504 (DESIGN §2 step 8: U
 *     unreachable ⇒ 504).
 * Both now say unreachable, within UPSTREAM_TIMEOUT (1 s here) and a little.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { auditHead, auditRowsSince } from '../helpers/db-probe.js';
import { mcpPost, openSession } from '../helpers/mcp-http.js';
import { Browser, drive, redeem } from '../helpers/stack.js';
import { startFaultStack, timed, toCallback, UPSTREAM_TIMEOUT_MS, type FaultStack } from './fault-stack.js';

let stack: FaultStack;
let clientId: string;
beforeAll(async () => {
  stack = await startFaultStack({ upstreamAccessTokenTtl: 5 });
  clientId = (await registerClient(stack.app)).client_id;
});
afterAll(() => stack.close());

describe('upstream timeout is unreachable', () => {
  it('at the callback: 502 page after UPSTREAM_TIMEOUT, audited as unreachable', async () => {
    const browser = new Browser('slow-callback');
    const { callback } = await toCallback(stack, browser, clientId);
    const from = await auditHead(stack.app);
    await stack.u.setFault({ kind: 'hang', paths: /^\/token/ });
    const { value: page, ms } = await timed(() => browser.navigate(callback, { initiator: stack.upstream.issuer }));
    await stack.u.setFault(undefined);
    expect(page.status).toBe(502);
    expect(ms).toBeGreaterThanOrEqual(UPSTREAM_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(UPSTREAM_TIMEOUT_MS + 1500);
    expect((await auditRowsSince(stack.app, from)).map((r) => `${r.event}:${r.reason}`)).toEqual(['upstream.callback_failed:unreachable']);
  });

  it("at the gateway's refresh: 504 after UPSTREAM_TIMEOUT, audited as unreachable", async () => {
    const browser = new Browser('slow-refresh');
    const { callback, auth } = await toCallback(stack, browser, clientId);
    const code = (await drive(browser, callback, auth.redirectUri)).callback.searchParams.get('code') as string;
    const token = (await redeem(stack.app, clientId, code, auth.verifier)).body.access_token as string;
    const mcp = `${stack.app.url}/mcp`;
    const session = await openSession(mcp, token);
    const from = await auditHead(stack.app);
    await stack.u.setFault({ kind: 'hang', paths: /^\/token/ });
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 10_000 }); // U's token (5 s) has expired
    try {
      const { value: res, ms } = await timed(() => mcpPost(mcp, token, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': session }));
      expect(res.status).toBe(504);
      expect(ms).toBeLessThan(UPSTREAM_TIMEOUT_MS + 1500);
    } finally {
      vi.useRealTimers();
      await stack.u.setFault(undefined);
    }
    const rows = (await auditRowsSince(stack.app, from)).map((r) => `${r.event}:${r.reason}`);
    expect(rows).toContain('upstream.refresh_failed:unreachable');
    expect(rows).toContain('gateway.rejected:upstream_token_unreachable');
  });
});
