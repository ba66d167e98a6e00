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
  const transactionsBefore = (await rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions'))[0].n;
  const consentsBefore = (await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', clientId))[0].n;
  const page = await browser.navigate(auth.url, { stopAt: (u) => u.startsWith(auth.redirectUri) });
  return {
    page,
    reason: (await auditEvents(stack.app)).filter((e) => e.event === 'consent.shown' || e.event === 'consent.skipped').at(-1)?.reason,
    reachedClient: page.status === 0,
    locations: page.hops.map((h) => h.location).filter(Boolean) as string[],
    upstreamContacted: stack.upstream.authorizations.length > upstreamBefore,
    transactionsCreated: (await rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions'))[0].n - transactionsBefore,
    consentsAdded: (await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', clientId))[0].n - consentsBefore,
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
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'consent.skipped' && e.client_id === clientId)).toHaveLength(0);
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
    await stack.app.runtime.sql.run('UPDATE consents SET browser_hash = NULL WHERE client_id = ?', [clientId]);
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
    const [row] = await rows(stack.app, 'SELECT browser_hash FROM consents WHERE client_id = ?', clientId);
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
    expect(setCookie).toMatch(/; Max-Age=34560000(;|$)/); // 400 days (SECURITY.md)
    expect(setCookie).not.toMatch(/Domain=/i);
  });
});

describe('consent per browser › P\'s session opens only from a click on P\'s own sign-in page', () => {
  const EVIL = 'https://evil.example';

  async function sideEffects() {
    return {
      transactions: (await rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions'))[0].n as number,
      upstream: stack.upstream.authorizations.length,
      sessions: (await rows(stack.app, 'SELECT count(*) AS n FROM browser_sessions'))[0].n as number,
      adminSessions: (await rows(stack.app, 'SELECT count(*) AS n FROM admin_sessions'))[0].n as number,
    };
  }

  /** A victim whose browser U already remembers (a later visit to U is approved silently). */
  async function victimKnownToU(name: string, login: string) {
    const victim = new Browser(name);
    await approvedIn(victim, login);
    return victim;
  }

  it.each(['account', 'admin'] as const)('a cross-site GET of /%s/login shows a button and starts nothing (no transaction, no redirect to U, no session)', async (purpose) => {
    const victim = await victimKnownToU(`victim-get-${purpose}`, purpose === 'admin' ? 'root' : 'alice');
    const before = await sideEffects();
    const page = await victim.navigate(`${stack.app.url}/${purpose}/login`, { initiator: EVIL });
    expect(page.status).toBe(200);
    expect(page.html).toMatch(/<form method="post" action="[^"]*\/login[^"]*">/);
    expect(page.html).toContain('id="sign-in"');
    expect(page.hops.filter((h) => h.location)).toEqual([]);
    expect(page.hops.flatMap((h) => h.setCookies).some((c) => /^__Host-mcp-(tx|session|admin)=/.test(c))).toBe(false);
    expect(await sideEffects()).toEqual(before);
  });

  it.each(['account', 'admin'] as const)('a cross-site POST to /%s/login without the page\'s token starts nothing (403)', async (purpose) => {
    const victim = await victimKnownToU(`victim-post-${purpose}`, purpose === 'admin' ? 'root' : 'alice');
    await victim.navigate(`${stack.app.url}/${purpose}/login`); // the victim holds a csrf cookie of their own
    const attacker = new Browser(`attacker-${purpose}`);
    const attackersPage = await attacker.navigate(`${stack.app.url}/${purpose}/login`);
    const attackersToken = /name="csrf" value="([^"]+)"/.exec(attackersPage.html)?.[1] as string;
    const before = await sideEffects();
    stack.app.runtime.refusals.tally.flush();
    const auditBefore = (await auditEvents(stack.app)).length;
    for (const body of [{}, { csrf: attackersToken }] as Record<string, string>[]) {
      const res = await victim.navigate(`${stack.app.url}/${purpose}/login`, { method: 'POST', body: new URLSearchParams(body), initiator: EVIL });
      expect(res.status).toBe(403);
      expect(res.hops.filter((h) => h.location)).toEqual([]);
      expect(res.hops.flatMap((h) => h.setCookies).some((c) => c.startsWith('__Host-mcp-tx='))).toBe(false);
    }
    expect(await sideEffects()).toEqual(before);
    // Nobody is signed in: counted per address, reason and minute (DESIGN §9), not a row each.
    stack.app.runtime.refusals.tally.flush();
    const refusals = (await auditEvents(stack.app)).slice(auditBefore).filter((e) => e.event === `${purpose}.rejected_aggregate`);
    expect(refusals.map((e) => [e.reason, JSON.parse(e.details as string).count])).toEqual([['signin_cross_site', 2]]);
  });

  it('a POST with this browser\'s cookie and token but another site\'s Fetch Metadata is refused; a token of another browser is refused', async () => {
    const victim = new Browser('victim-fetch-metadata');
    const page = await victim.navigate(`${stack.app.url}/account/login`);
    const token = /name="csrf" value="([^"]+)"/.exec(page.html)?.[1] as string;
    const cookie = `__Host-mcp-csrf=${victim.cookie('127.0.0.1', '__Host-mcp-csrf')}`;
    const other = new Browser('other-browser');
    const othersToken = /name="csrf" value="([^"]+)"/.exec((await other.navigate(`${stack.app.url}/account/login`)).html)?.[1] as string;
    const before = await sideEffects();
    const post = (headers: Record<string, string>, csrf: string) =>
      fetch(`${stack.app.url}/account/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, ...headers }, body: new URLSearchParams({ csrf }) });
    for (const site of ['cross-site', 'same-site', 'none']) {
      const res = await post({ 'sec-fetch-site': site }, token);
      expect(res.status, site).toBe(403);
      expect(res.headers.get('location')).toBeNull();
    }
    const foreign = await post({ 'sec-fetch-site': 'same-origin' }, othersToken);
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('location')).toBeNull();
    expect(await sideEffects()).toEqual(before);
  });

  it('the click on P\'s page starts the sign-in: 303 to U with the transaction cookie', async () => {
    const browser = new Browser('clicks');
    const page = await browser.navigate(`${stack.app.url}/account/login`);
    expect(page.headers.get('content-security-policy')).toContain(`form-action 'self' ${stack.upstream.issuer}`);
    const before = await sideEffects();
    const atU = await browser.submit(page, {}, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
    expect(atU.hops[0]).toMatchObject({ method: 'POST', status: 303, secFetchSite: 'same-origin' });
    expect(atU.hops[0]?.location?.startsWith(`${stack.upstream.issuer}/`)).toBe(true);
    expect(atU.hops[0]?.setCookies.some((c) => c.startsWith('__Host-mcp-tx='))).toBe(true);
    expect((await sideEffects()).transactions).toBe(before.transactions + 1);
  });
});
