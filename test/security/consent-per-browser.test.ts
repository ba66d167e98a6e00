/**
 * Consent is per user AND per browser (issue 9 item 5; CONS-02, CONS-16; SECURITY.md
 * "Consent is per user, per browser…"). A remembered consent skips P's page only in the browser
 * that clicked Approve: the same user in a second browser (signed in to P through /account) is
 * asked again, and nothing reaches U or the client until they click.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, isConsentPage, startStack, type Stack } from '../helpers/stack.js';
import { signIn } from '../helpers/admin.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { ADMIN_SUBJECTS: 'root' } });
});
afterAll(() => stack.close());

/** Alice approves a new client in `browser`; returns the client id. */
async function approvedIn(browser: Browser, login = 'alice'): Promise<string> {
  const client = await registerClient(stack.app);
  const auth = buildAuthorization(stack.app, { clientId: client.client_id });
  expect((await drive(browser, auth.url, auth.redirectUri, { login })).seen[0]).toBe('consent');
  return client.client_id as string;
}

/** Open an authorization for `clientId` in `browser`, as the application would (Sec-Fetch-Site none). */
async function open(browser: Browser, clientId: string) {
  const auth = buildAuthorization(stack.app, { clientId });
  const upstreamBefore = stack.upstream.authorizations.length;
  const transactionsBefore = rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions')[0].n;
  const consentsBefore = rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', clientId)[0].n;
  const page = await browser.navigate(auth.url, { stopAt: (u) => u.startsWith(auth.redirectUri) });
  return {
    page,
    reason: auditEvents(stack.app).filter((e) => e.event === 'consent.shown' || e.event === 'consent.skipped').at(-1)?.reason,
    reachedClient: page.status === 0,
    locations: page.hops.map((h) => h.location).filter(Boolean) as string[],
    upstreamContacted: stack.upstream.authorizations.length > upstreamBefore,
    transactionsCreated: rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions')[0].n - transactionsBefore,
    consentsAdded: rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', clientId)[0].n - consentsBefore,
  };
}

describe('consent per browser', () => {
  it('is remembered in the browser that approved it', async () => {
    const a = new Browser('alice-laptop');
    const clientId = await approvedIn(a);
    const r = await open(a, clientId);
    expect(r.reachedClient).toBe(true);
    expect(r.reason).toBe('remembered');
    expect(r.upstreamContacted).toBe(false);
  });

  it('asks again in a second browser of the same user (signed in to P via /account): no U redirect, no code, no row without the click', async () => {
    const a = new Browser('alice-laptop-2');
    const clientId = await approvedIn(a);
    const b = new Browser('alice-phone');
    const account = await signIn(stack, b, 'account', 'alice');
    expect(account.status).toBe(200); // B holds P's session for alice
    const r = await open(b, clientId);
    expect(r.page.status).toBe(200);
    expect(isConsentPage(r.page)).toBe(true);
    expect(r.reason).toBe('other_browser');
    expect(r.reachedClient).toBe(false);
    expect(r.locations.some((l) => l.includes('code=') || l.startsWith(stack.upstream.issuer) || l.startsWith('http://127.0.0.1:33418'))).toBe(false);
    expect(r.upstreamContacted).toBe(false);
    expect(r.transactionsCreated).toBe(0);
    expect(r.consentsAdded).toBe(0);
    expect(auditEvents(stack.app).filter((e) => e.event === 'consent.skipped' && e.client_id === clientId)).toHaveLength(0);
  });

  it('asks again in a browser that copied nothing but the session cookie of the approving one', async () => {
    const a = new Browser('alice-desktop');
    const clientId = await approvedIn(a);
    const c = new Browser('same-session-elsewhere');
    c.setCookie('127.0.0.1', '__Host-mcp-session', a.cookie('127.0.0.1', '__Host-mcp-session') as string);
    const r = await open(c, clientId);
    expect(isConsentPage(r.page)).toBe(true);
    expect(r.reason).toBe('other_browser');
    expect(r.upstreamContacted).toBe(false);
  });

  it('a consent without a browser binding (recorded before the upgrade) never skips the page', async () => {
    const a = new Browser('alice-legacy');
    const clientId = await approvedIn(a);
    stack.app.runtime.db.prepare('UPDATE consents SET browser_hash = NULL WHERE client_id = ?').run(clientId);
    const r = await open(a, clientId);
    expect(isConsentPage(r.page)).toBe(true);
    expect(r.reason).toBe('browser_unbound');
    expect(r.upstreamContacted).toBe(false);
    expect(r.transactionsCreated).toBe(0);
  });

  it('stores only a hash of the browser id, and sets the id as a signed __Host- HttpOnly SameSite=Lax cookie at Approve', async () => {
    const a = new Browser('alice-cookie');
    const clientId = await approvedIn(a);
    const cookie = a.cookie('127.0.0.1', '__Host-mcp-browser') as string;
    expect(cookie).toBeTruthy();
    const id = cookie.slice(0, cookie.lastIndexOf('.'));
    const [row] = rows(stack.app, 'SELECT browser_hash FROM consents WHERE client_id = ?', clientId);
    expect(row.browser_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(row.browser_hash).not.toContain(id);
    const b = new Browser('set-cookie-check');
    const consent = await b.navigate(buildAuthorization(stack.app, { clientId }).url);
    const approve = await b.submit(consent, { action: 'approve' }, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
    const setCookie = approve.hops[0]?.setCookies.find((c) => c.startsWith('__Host-mcp-browser=')) ?? '';
    expect(setCookie).toMatch(/; Path=\//);
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; Secure/);
    expect(setCookie).toMatch(/; SameSite=Lax/);
    expect(setCookie).not.toMatch(/Domain=/i);
  });
});
