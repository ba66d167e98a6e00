/**
 * README "Operations" → Metrics names `mcp_proxy_tokens_total{outcome,grant_type}`,
 * `mcp_proxy_upstream_refreshes_total{outcome}` and `mcp_proxy_audit_events_total{event}` at
 * `/metrics`; no test read them (audit of the documentation's claims). Each is fed from the audit
 * log's records (src/http/metrics.ts `observeAudit`); here each must move on `/metrics` when its
 * event happens: a token issued (by code, by refresh token), a token request refused, an upstream
 * token refreshed at the gateway, and the audit records of each.
 *
 * Found by that audit: a refused token request was always counted with `grant_type=""`, though
 * its grant type is in the request (and in its token.rejected row). It is now the request's
 * grant type — one of those P supports, `other` for anything else (a request-chosen string must
 * not make a new series each), `""` when none was sent (a refused revocation).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { Browser, authorizeClient, refresh, startStack, type Stack } from '../helpers/stack.js';
import { callTool, openSession } from '../helpers/mcp-http.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack?.close());

/** Every sample of `/metrics`, by its series (name and labels as printed). */
async function scrape(): Promise<Map<string, number>> {
  await stack.app.runtime.audit.flush();
  const res = await fetch(`${stack.app.url}/metrics`);
  expect(res.status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const match = /^(mcp_proxy_\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) samples.set(match[1] as string, Number(match[2]));
  }
  return samples;
}

/** How much each series moved between two scrapes (0 for a series in neither). */
const moved = (before: Map<string, number>, after: Map<string, number>, series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);

const postToken = async (params: Record<string, string>) => {
  const res = await fetch(`${stack.app.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params) });
  await res.arrayBuffer();
  return res.status;
};

describe('metrics named in README "Operations" move with their events', () => {
  it('mcp_proxy_tokens_total{outcome="issued"} counts a token issued by code and by refresh token, mcp_proxy_audit_events_total the token.issued records', async () => {
    const before = await scrape();
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: 'metrics-issued' });
    expect(tokens.status).toBe(200);
    const afterCode = await scrape();
    expect(moved(before, afterCode, 'mcp_proxy_tokens_total{outcome="issued",grant_type="authorization_code"}')).toBe(1);
    expect(moved(before, afterCode, 'mcp_proxy_audit_events_total{event="token.issued"}')).toBe(1);
    expect(moved(before, afterCode, 'mcp_proxy_audit_events_total{event="consent.approved"}')).toBe(1);

    expect((await refresh(stack.app, clientId, tokens.body.refresh_token as string)).status).toBe(200);
    const afterRefresh = await scrape();
    expect(moved(afterCode, afterRefresh, 'mcp_proxy_tokens_total{outcome="issued",grant_type="refresh_token"}')).toBe(1);
    expect(moved(afterCode, afterRefresh, 'mcp_proxy_tokens_total{outcome="issued",grant_type="authorization_code"}')).toBe(0);
    expect(moved(afterCode, afterRefresh, 'mcp_proxy_audit_events_total{event="token.issued"}')).toBe(1);
  });

  it('mcp_proxy_tokens_total{outcome="rejected"} counts a refused token request under the grant type it asked for', async () => {
    const clientId = (await registerClient(stack.app)).client_id as string;
    const before = await scrape();
    expect(await postToken({ grant_type: 'authorization_code', code: 'not-a-code', code_verifier: 'v'.repeat(43), client_id: clientId, redirect_uri: 'http://127.0.0.1:33418/callback' })).toBe(400);
    expect(await postToken({ grant_type: 'refresh_token', refresh_token: 'not-a-refresh-token', client_id: clientId })).toBe(400);
    expect(await postToken({ grant_type: 'urn:example:made-up', client_id: clientId })).toBe(400);
    const after = await scrape();
    expect(moved(before, after, 'mcp_proxy_audit_events_total{event="token.rejected"}')).toBe(3);
    expect(moved(before, after, 'mcp_proxy_tokens_total{outcome="rejected",grant_type="authorization_code"}')).toBe(1);
    expect(moved(before, after, 'mcp_proxy_tokens_total{outcome="rejected",grant_type="refresh_token"}')).toBe(1);
    // A grant type the request made up is not a series of its own.
    expect(moved(before, after, 'mcp_proxy_tokens_total{outcome="rejected",grant_type="other"}')).toBe(1);
    expect([...after.keys()].some((series) => series.includes('made-up'))).toBe(false);
  });

  it('mcp_proxy_upstream_refreshes_total{outcome="refreshed"} counts an upstream token refreshed at the gateway, mcp_proxy_audit_events_total its record', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser(), { login: 'metrics-refresh' });
    const [consent] = await stack.app.runtime.stores.consents.unrevokedForClient(clientId);
    const token = tokens.body.access_token as string;
    const sessionId = await openSession(`${stack.app.url}/mcp`, token);
    await stack.app.runtime.sql.run('UPDATE upstream_tokens SET expires_at = 1 WHERE grant_id = ?', [consent?.grant_id]); // U's token expired: the next call refreshes it
    const before = await scrape();
    expect((await callTool(`${stack.app.url}/mcp`, token, sessionId, 'whoami')).status).toBe(200);
    const after = await scrape();
    expect(moved(before, after, 'mcp_proxy_upstream_refreshes_total{outcome="refreshed"}')).toBe(1);
    expect(moved(before, after, 'mcp_proxy_audit_events_total{event="upstream.token_refreshed"}')).toBe(1);
    expect(moved(before, after, 'mcp_proxy_audit_events_total{event="gateway.forwarded"}')).toBe(1);
  });
});
