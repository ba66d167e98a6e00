/**
 * AT-03 forwarded upstream URL, AT-12 login CSRF through the callback, AT-13 state replay and
 * expiry (STATE-04..07): the callback is bound to the browser that approved, single-use and
 * short-lived. Every refusal: P's error page, no redirect, no code, no consent, no session.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHash } from 'node:crypto';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let victim: Browser;
beforeAll(async () => {
  stack = await startStack();
  victim = new Browser('victim');
  await authorizeClient(stack, victim, { login: 'victim' }); // U remembers the victim
});
afterAll(() => stack.close());

const EVIL = 'https://evil.example/cb';
const isCallback = (u: string) => u.includes('/upstream/callback');

/** The attacker approves its own client in its own browser and stops before U. */
async function attackerApproves(attacker: Browser) {
  const client = await registerClient(stack.app, { redirect_uris: [EVIL] });
  const auth = buildAuthorization(stack.app, { clientId: client.client_id, redirectUri: EVIL });
  const page = await attacker.navigate(auth.url);
  const toU = await attacker.submit(page, { action: 'approve' }, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
  return { client, upstreamUrl: toU.url };
}

function expectRefused(page: { status: number; html: string; hops: { location?: string | undefined }[] }) {
  expect(page.status).toBe(400);
  expect(page.html).toContain('This sign-in cannot be completed');
  expect(page.hops.at(-1)?.location).toBeUndefined();
}

describe('AT-03 forwarded upstream URL', () => {
  it('the victim\'s browser lacks the transaction cookie, so the callback refuses and no code is issued', async () => {
    const attacker = new Browser('attacker');
    const { client, upstreamUrl } = await attackerApproves(attacker);
    const codesBefore = (await rows(stack.app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'AuthorizationCode'"))[0].n;
    // The victim opens U's URL; U silently approves and sends the victim's browser to P.
    const page = await victim.navigate(upstreamUrl, { initiator: 'https://evil.example', stopAt: (u) => u.startsWith('https://evil.example') });
    expect(page.hops.some((h) => isCallback(h.url))).toBe(true);
    expectRefused(page);
    expect(page.hops.some((h) => h.url.startsWith('https://evil.example') || h.location?.startsWith('https://evil.example'))).toBe(false);
    expect((await rows(stack.app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'AuthorizationCode'"))[0].n).toBe(codesBefore);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', client.client_id))[0].n).toBe(0);
    const last = (await auditEvents(stack.app)).at(-1);
    expect(last?.event).toBe('upstream.callback_failed');
    expect(['state_mismatch', 'missing_cookie']).toContain(last?.reason);
  });
});

describe('AT-12 login CSRF through the callback', () => {
  it('a callback URL for the attacker\'s upstream account does not log the victim in', async () => {
    const attacker = new Browser('attacker');
    const { upstreamUrl } = await attackerApproves(attacker);
    let atU = await attacker.navigate(upstreamUrl, { stopAt: isCallback });
    atU = await attacker.submit(atU, { login: 'mallory' }, { stopAt: isCallback });
    if (atU.status !== 0) atU = await attacker.submit(atU, { allow: 'yes' }, { stopAt: isCallback });
    const fresh = new Browser('fresh-victim');
    const sessionsBefore = (await rows(stack.app, 'SELECT count(*) AS n FROM browser_sessions'))[0].n;
    const page = await fresh.navigate(atU.url, { initiator: 'https://evil.example' });
    expectRefused(page);
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'upstream.callback_failed', reason: 'missing_cookie' });
    expect(fresh.cookieNames('127.0.0.1')).not.toContain('__Host-mcp-session');
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM browser_sessions'))[0].n).toBe(sessionsBefore);
  });
});

describe('AT-13 state replay and expiry', () => {
  async function toCallback(browser: Browser, login: string) {
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const page = await browser.navigate(auth.url);
    let next = await browser.submit(page, { action: 'approve' }, { stopAt: isCallback });
    if (next.status !== 0) next = await browser.submit(next, { login }, { stopAt: isCallback });
    if (next.status !== 0) next = await browser.submit(next, { allow: 'yes' }, { stopAt: isCallback });
    return { client, callbackUrl: next.url, auth };
  }

  it('refuses a replayed callback, even with the binding cookie put back', async () => {
    const browser = new Browser();
    const { callbackUrl } = await toCallback(browser, 'replay-user');
    const cookieBefore = browser.cookie('127.0.0.1', '__Host-mcp-tx') as string;
    const first = await browser.navigate(callbackUrl, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith('http://127.0.0.1:33418') });
    expect(first.status).toBe(0);
    const replay = await browser.navigate(callbackUrl, { initiator: stack.upstream.issuer });
    expectRefused(replay);
    browser.setCookie('127.0.0.1', '__Host-mcp-tx', cookieBefore);
    const replayWithCookie = await browser.navigate(callbackUrl, { initiator: stack.upstream.issuer });
    expectRefused(replayWithCookie);
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'upstream.callback_failed', reason: 'replayed' });
  });

  it('refuses a state older than ten minutes (fake clock), even if the browser kept its cookie', async () => {
    const browser = new Browser();
    const { callbackUrl, client } = await toCallback(browser, 'slow-user');
    const cookie = browser.cookie('127.0.0.1', '__Host-mcp-tx') as string;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 10 * 60_000 + 1000);
      expect(browser.cookieNames('127.0.0.1')).toContain('__Host-mcp-tx');
      expect((await browser.navigate(callbackUrl, { initiator: stack.upstream.issuer })).status).toBe(400);
      expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ reason: 'missing_cookie' }); // the browser dropped it (Max-Age=600)
      browser.setCookie('127.0.0.1', '__Host-mcp-tx', cookie);
      const page = await browser.navigate(callbackUrl, { initiator: stack.upstream.issuer });
      expect(page.status).toBe(400);
    } finally {
      vi.useRealTimers();
    }
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'upstream.callback_failed').at(-1)).toMatchObject({ reason: 'expired' });
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', client.client_id))[0].n).toBe(0);
  });

  it('refuses a state issued to another transaction, and a missing or altered state', async () => {
    const a = new Browser('a');
    const b = new Browser('b');
    await toCallback(a, 'user-a');
    const { callbackUrl: bCallback } = await toCallback(b, 'user-b');
    expectRefused(await a.navigate(bCallback, { initiator: stack.upstream.issuer }));
    const altered = new URL(bCallback);
    altered.searchParams.set('state', `${altered.searchParams.get('state')}x`);
    expectRefused(await b.navigate(altered.href, { initiator: stack.upstream.issuer }));
    const missing = new URL(bCallback);
    missing.searchParams.delete('state');
    expectRefused(await b.navigate(missing.href, { initiator: stack.upstream.issuer }));
    // The untouched transaction still works afterwards in its own browser.
    const ok = await b.navigate(bCallback, { initiator: stack.upstream.issuer, stopAt: (u) => u.startsWith('http://127.0.0.1:33418') });
    expect(new URL(ok.url).searchParams.get('code')).toBeTruthy();
    expect(createHash('sha256').update('x').digest('hex')).toHaveLength(64);
  });

  const atClient = (u: string) => u.startsWith('http://127.0.0.1:33418');
  const codes = async () => (await rows(stack.app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'AuthorizationCode'"))[0].n as number;

  it('two tabs of one browser sign in at once: both callbacks complete, in either order, and the cookie empties', async () => {
    const browser = new Browser('two-tabs');
    const first = await toCallback(browser, 'two-tabs');
    const second = await toCallback(browser, 'two-tabs');
    for (const tab of [second, first]) {
      const done = await browser.navigate(tab.callbackUrl, { initiator: stack.upstream.issuer, stopAt: atClient });
      expect(done.status).toBe(0); // stopped at the client's redirect URI
      expect(atClient(done.url) && new URL(done.url).searchParams.get('code')).toBeTruthy();
    }
    expect(browser.cookieNames('127.0.0.1')).not.toContain('__Host-mcp-tx');
  });

  it('keeps five: the sixth sign-in started in one browser pushes out the first, whose callback is refused (state_mismatch) with no code or consent', async () => {
    const browser = new Browser('six-tabs');
    const tabs = [];
    for (let i = 0; i < 6; i++) tabs.push(await toCallback(browser, 'six-tabs'));
    const [oldest, secondOldest] = tabs as [(typeof tabs)[0], (typeof tabs)[0]];
    const before = await codes();
    expectRefused(await browser.navigate(oldest.callbackUrl, { initiator: stack.upstream.issuer }));
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'upstream.callback_failed', reason: 'state_mismatch' });
    expect(await codes()).toBe(before);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', oldest.client.client_id))[0].n).toBe(0);
    // The second oldest is still among the five.
    const done = await browser.navigate(secondOldest.callbackUrl, { initiator: stack.upstream.issuer, stopAt: atClient });
    expect(done.status).toBe(0);
    expect(atClient(done.url) && new URL(done.url).searchParams.get('code')).toBeTruthy();
  });
});
