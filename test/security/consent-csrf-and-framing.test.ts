/**
 * AT-04 consent CSRF (CONS-08), AT-05 framing (CONS-09), AT-08 redirect URI swap mid-flow
 * (CONS-14, STATE-07).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, startStack, type Stack } from '../helpers/stack.js';
import { parseForm } from '../helpers/browser.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const EVIL = 'https://evil.example/cb';

async function attackerConsentPage() {
  const attacker = new Browser('attacker');
  const client = await registerClient(stack.app, { redirect_uris: [EVIL] });
  const auth = buildAuthorization(stack.app, { clientId: client.client_id, redirectUri: EVIL });
  const page = await attacker.navigate(auth.url);
  const form = parseForm(page.html);
  if (!form) throw new Error('no consent form');
  return { attacker, client, page, form, action: new URL(form.action, page.url).href };
}

async function expectNothingHappened(res: { status: number; hops: { location?: string | undefined; setCookies: string[] }[] }, clientId: string) {
  expect(res.status).toBe(403);
  expect(res.hops[0]?.location).toBeUndefined();
  expect(res.hops.flatMap((h) => h.setCookies).some((c) => c.startsWith('__Host-mcp-tx'))).toBe(false);
  expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions WHERE client_id = ?', clientId))[0].n).toBe(0);
}

describe('AT-04 consent CSRF', () => {
  it('a cross-site auto-submitted form with the attacker\'s transaction and token gets 403; U is never contacted', async () => {
    const { client, form, action } = await attackerConsentPage();
    const victim = new Browser('victim');
    await victim.navigate(`${stack.app.url}/healthz`); // the victim has visited P before
    const before = stack.upstream.authorizations.length;
    const res = await victim.navigate(action, { method: 'POST', body: new URLSearchParams({ ...form.fields, action: 'approve' }), initiator: 'https://evil.example' });
    await expectNothingHappened(res, client.client_id);
    expect(stack.upstream.authorizations.length).toBe(before);
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'consent.rejected', reason: 'csrf_cookie_missing' });
  });

  it('a token minted for another browser is refused even when this browser\'s own cookie is sent', async () => {
    const { client, form, action } = await attackerConsentPage();
    const victim = new Browser('victim2');
    // The victim has its own CSRF cookie from an earlier consent page of P.
    const mine = await registerClient(stack.app);
    await victim.navigate(buildAuthorization(stack.app, { clientId: mine.client_id }).url);
    // Same-site submission (e.g. an attacker-controlled page on a sibling origin): cookies are sent.
    const res = await victim.navigate(action, { method: 'POST', body: new URLSearchParams({ ...form.fields, action: 'approve' }), initiator: stack.app.url });
    await expectNothingHappened(res, client.client_id);
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'consent.rejected', reason: 'csrf_mismatch' });
  });

  it('a POST without a token, or with a token for another interaction, gets 403', async () => {
    const first = await attackerConsentPage();
    const second = await first.attacker.navigate(buildAuthorization(stack.app, { clientId: first.client.client_id, redirectUri: EVIL }).url);
    const secondForm = parseForm(second.html);
    const noToken = await first.attacker.navigate(first.action, { method: 'POST', body: new URLSearchParams({ action: 'approve' }), initiator: stack.app.url });
    await expectNothingHappened(noToken, first.client.client_id);
    const swapped = await first.attacker.navigate(first.action, { method: 'POST', body: new URLSearchParams({ csrf: secondForm?.fields.csrf ?? '', action: 'approve' }), initiator: stack.app.url });
    await expectNothingHappened(swapped, first.client.client_id);
  });
});

describe('AT-05 clickjacking', () => {
  it('every page of the flow forbids framing (the headless-browser check is in test/e2e)', async () => {
    const { page } = await attackerConsentPage();
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    for (const path of ['/upstream/callback?state=x', '/authorize?client_id=x', '/nope']) {
      const res = await fetch(`${stack.app.url}${path}`, { headers: { accept: 'text/html' } });
      expect(res.headers.get('x-frame-options'), path).toBe('DENY');
      expect(res.headers.get('content-security-policy'), path).toContain("frame-ancestors 'none'");
    }
  });
});

describe('AT-08 redirect URI swap mid-flow', () => {
  it('ignores redirect_uri, client_id and scope in the Approve POST; the code goes only to the registered URI', async () => {
    const other = await registerClient(stack.app, { redirect_uris: [EVIL] });
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const browser = new Browser();
    const page = await browser.navigate(auth.url);
    const tampered = await browser.submit(
      page,
      { action: 'approve', redirect_uri: EVIL, client_id: other.client_id, scope: 'mcp:tools offline_access openid' },
      { stopAt: (u) => u.startsWith('https://evil.example') || u.startsWith(auth.redirectUri) },
    );
    const result = await drive(browser, tampered.url, auth.redirectUri, { login: 'alice' });
    expect(result.callback.origin + result.callback.pathname).toBe(auth.redirectUri);
    expect(result.callback.searchParams.get('code')).toBeTruthy();
    expect(await rows(stack.app, 'SELECT client_id, redirect_uri, scopes FROM consents WHERE client_id IN (?, ?)', client.client_id, other.client_id)).toEqual([
      { client_id: client.client_id, redirect_uri: auth.redirectUri, scopes: 'mcp:tools' },
    ]);
  });
});
