/**
 * Remembered consent (CONS-02, CONS-13, CONS-16, DESIGN §2 step 4): the page is skipped only for
 * the same user's browser session, same client, same redirect URI, same resource, covered
 * scopes, an active unexpired consent, and a navigation that did not come from another site.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditEvents, registerClient } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, startStack, type Stack } from '../helpers/stack.js';
import { decideConsent } from '../../src/consent/decision.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { MCP_SCOPES: 'mcp:tools mcp:admin', CONSENT_TTL: '30d', SESSION_TTL: '365d' } });
});
afterAll(() => stack.close());

const second = 'http://127.0.0.1:33418/second';

async function approved() {
  const client = await registerClient(stack.app, { redirect_uris: ['http://127.0.0.1:33418/callback', second] });
  const browser = new Browser();
  const auth = buildAuthorization(stack.app, { clientId: client.client_id, scope: 'mcp:tools' });
  const first = await drive(browser, auth.url, auth.redirectUri, { login: 'alice' });
  expect(first.seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);
  return { clientId: client.client_id as string, browser };
}

async function again(browser: Browser, clientId: string, options: { scope?: string; redirectUri?: string; initiator?: string; noFetchMetadata?: boolean; prompt?: string } = {}) {
  const auth = buildAuthorization(stack.app, { clientId, scope: options.scope ?? 'mcp:tools', redirectUri: options.redirectUri, prompt: options.prompt });
  const upstreamBefore = stack.upstream.authorizations.length;
  const page = await browser.navigate(auth.url, { initiator: options.initiator, noFetchMetadata: options.noFetchMetadata, stopAt: (u) => u.startsWith(auth.redirectUri) });
  return { page, skipped: page.status === 0, code: page.status === 0 ? new URL(page.url).searchParams.get('code') : null, upstreamContacted: stack.upstream.authorizations.length > upstreamBefore, reason: (await auditEvents(stack.app)).at(-1)?.reason };
}

describe('remembered consent', () => {
  it('skips the page for the same browser, client, redirect URI, resource and covered scopes — U is not contacted', async () => {
    const { clientId, browser } = await approved();
    const r = await again(browser, clientId);
    expect(r.skipped).toBe(true);
    expect(r.code).toBeTruthy();
    expect(r.upstreamContacted).toBe(false);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'consent.skipped').at(-1)).toMatchObject({ reason: 'remembered', client_id: clientId, subject: 'alice' });
  });

  it.each([
    ['wider scopes', { scope: 'mcp:tools mcp:admin' }, 'scopes_not_covered'],
    ['another registered redirect URI', { redirectUri: second }, 'no_consent'],
    ['a cross-site navigation', { initiator: 'https://evil.example' }, 'cross_site'],
    ['no Fetch Metadata at all', { noFetchMetadata: true }, 'fetch_metadata_absent'],
    ['prompt=consent', { prompt: 'consent' }, 'prompt_requested'],
  ])('asks again for %s', async (_label, options, reason) => {
    const { clientId, browser } = await approved();
    const r = await again(browser, clientId, options);
    expect(r.skipped).toBe(false);
    expect(r.page.html).toContain('name="action" value="approve"');
    expect(r.reason).toBe(reason);
  });

  it('asks again in another browser, even for the same user', async () => {
    const { clientId } = await approved();
    const r = await again(new Browser('other'), clientId);
    expect(r.skipped).toBe(false);
    expect(r.reason).toBe('no_session');
  });

  it('asks again once the consent expired (fake clock)', async () => {
    const { clientId, browser } = await approved();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 31 * 86_400_000);
      const r = await again(browser, clientId);
      expect(r.skipped).toBe(false);
      expect(r.reason).toBe('expired');
    } finally {
      vi.useRealTimers();
    }
  });

  it('asks again once the consent was revoked', async () => {
    const { clientId, browser } = await approved();
    const [consent] = await stack.app.runtime.stores.consents.unrevokedForClient(clientId);
    await stack.app.runtime.revocation.revokeGrant(consent?.grant_id as string, 'user');
    const r = await again(browser, clientId);
    expect(r.skipped).toBe(false);
    expect(r.reason).toBe('revoked');
  });

  it('another resource is never covered (unit: the decision rule)', () => {
    const consent = { id: 1, subject: 's', client_id: 'c', redirect_uri: 'r', resource: 'https://p/mcp', scopes: 'mcp:tools', upstream_scopes: 'openid', granted_at: 0, expires_at: Date.now() + 1000, revoked_at: null, revoked_reason: null, grant_id: 'g', last_used_at: null, browser_hash: 'b' };
    const base = { subject: 's', latest: consent, browserHash: 'b', secFetchSite: 'none', promptRequested: false, grantExists: () => true, now: Date.now() };
    expect(decideConsent({ ...base, request: { clientId: 'c', redirectUri: 'r', resource: 'https://p/mcp', scopes: ['mcp:tools'] } })).toMatchObject({ skip: true });
    expect(decideConsent({ ...base, request: { clientId: 'c', redirectUri: 'r', resource: 'https://p/other', scopes: ['mcp:tools'] } })).toEqual({ skip: false, reason: 'resource_mismatch' });
    expect(decideConsent({ ...base, grantExists: () => false, request: { clientId: 'c', redirectUri: 'r', resource: 'https://p/mcp', scopes: ['mcp:tools'] } })).toEqual({ skip: false, reason: 'grant_missing' });
    expect(decideConsent({ ...base, secFetchSite: 'same-site', request: { clientId: 'c', redirectUri: 'r', resource: 'https://p/mcp', scopes: ['mcp:tools'] } })).toEqual({ skip: false, reason: 'cross_site' });
  });
});
