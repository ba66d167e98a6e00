/**
 * Admin access (issue 6; SECURITY.md "Admin access"): every admin route answers 401 to nobody,
 * 403 to a signed-in non-admin, and works for an admin; every admin POST needs the session's CSRF
 * token; sessions end after the idle and absolute timeouts; actions cascade and are audited.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { Browser, authorizeClient, refresh, startStack, type Stack } from '../helpers/stack.js';
import { clickSignIn, csrfOf, signIn } from '../helpers/admin.js';
import { mcpPost, INITIALIZE } from '../helpers/mcp-http.js';
import { cspDirectives } from '../helpers/csp.js';

let stack: Stack;
let admin: Browser;
let adminCsrf: string;
let target: { clientId: string; consentId: number; token: string; refresh: string };

beforeAll(async () => {
  stack = await startStack({ env: { ADMIN_SUBJECTS: 'root another-admin', ADMIN_IDLE_TTL: '30m', ADMIN_SESSION_TTL: '8h' } });
  const { clientId, tokens } = await authorizeClient(stack, new Browser('user'), { login: 'alice', register: { client_name: 'Target App' } });
  target = { clientId, consentId: (await rows(stack.app, 'SELECT id FROM consents WHERE client_id = ?', clientId))[0].id, token: tokens.body.access_token, refresh: tokens.body.refresh_token };
  admin = new Browser('admin');
  const landing = await signIn(stack, admin, 'admin', 'root');
  expect(landing.status).toBe(200);
  adminCsrf = csrfOf(landing);
});
afterAll(() => stack.close());

const GETS = ['/admin', '/admin/clients', '/admin/clients/{client}', '/admin/consents', '/admin/audit', '/admin/audit/export?format=csv'];
const POSTS = ['/admin/clients/{client}/disable', '/admin/clients/{client}/enable', '/admin/clients/{client}/delete', '/admin/consents/{consent}/revoke', '/admin/audit/verify', '/admin/logout'];
const path = (p: string) => p.replace('{client}', encodeURIComponent(target.clientId)).replace('{consent}', String(target.consentId));

async function post(browser: Browser, p: string, fields: Record<string, string>) {
  return browser.navigate(`${stack.app.url}${path(p)}`, { method: 'POST', body: new URLSearchParams(fields), initiator: stack.app.url });
}

describe('admin routes › who may enter', () => {
  it('answers 401 with a sign-in link to nobody, on every route, and changes nothing', async () => {
    const anonymous = new Browser('anonymous');
    for (const p of GETS) {
      const page = await anonymous.navigate(`${stack.app.url}${path(p)}`);
      expect(page.status, p).toBe(401);
      expect(page.html, p).toContain('/admin/login?return=');
    }
    // The export returns to the audit page after sign-in, not to itself (the redirect through U is cross-site: it would refuse it).
    const exportPage = await anonymous.navigate(`${stack.app.url}/admin/audit/export?format=csv`);
    expect(exportPage.html).toContain(`/admin/login?return=${encodeURIComponent('/admin/audit')}"`);
    for (const p of POSTS) expect((await post(anonymous, p, { csrf: adminCsrf, confirm: 'yes' })).status, p).toBe(401);
    expect(await rows(stack.app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', target.clientId)).toEqual([{ disabled_at: null }]);
    expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE id = ?', target.consentId)).toEqual([{ revoked_at: null }]);
  });

  it('refuses a non-admin at sign-in (403, audited) and answers 403 on every route to a signed-in user', async () => {
    const user = new Browser('bob');
    const denied = await signIn(stack, user, 'admin', 'bob');
    expect(denied.status).toBe(403);
    expect(denied.html).toContain('Not an administrator');
    expect(user.cookieNames('127.0.0.1')).not.toContain('__Host-mcp-admin');
    expect((await auditEvents(stack.app)).find((e) => e.event === 'admin.login_denied')).toMatchObject({ subject: 'bob', reason: 'not_an_admin' });
    await signIn(stack, user, 'account', 'bob'); // bob has P's browser session now
    for (const p of GETS) expect((await user.navigate(`${stack.app.url}${path(p)}`)).status, p).toBe(403);
    for (const p of POSTS) expect((await post(user, p, { csrf: adminCsrf, confirm: 'yes' })).status, p).toBe(403);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'admin.rejected' && e.subject === 'bob')).toHaveLength(GETS.length + POSTS.length);
  });

  it('lets the admin read every page', async () => {
    for (const p of GETS) {
      const page = await admin.navigate(`${stack.app.url}${path(p)}`);
      expect(page.status, p).toBe(200);
      expect(cspDirectives(page.headers.get('content-security-policy'))['form-action'], p).toEqual(["'self'"]);
      expect(page.headers.get('x-frame-options')).toBe('DENY');
    }
    expect((await auditEvents(stack.app)).find((e) => e.event === 'admin.login')).toMatchObject({ subject: 'root' });
  });
});

describe('admin routes › CSRF', () => {
  it('refuses every POST without the session token, or with another session\'s token', async () => {
    const other = new Browser('other-admin');
    const otherCsrf = csrfOf(await signIn(stack, other, 'admin', 'another-admin'));
    for (const p of POSTS) {
      expect((await post(admin, p, { confirm: 'yes' })).status, `${p} without token`).toBe(403);
      expect((await post(admin, p, { csrf: otherCsrf, confirm: 'yes' })).status, `${p} with another session's token`).toBe(403);
    }
    expect(await rows(stack.app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', target.clientId)).toEqual([{ disabled_at: null }]);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'admin.rejected' && e.reason === 'csrf').length).toBe(POSTS.length * 2);
  });
});

describe('admin routes › cross-site GET', () => {
  it("refuses the audit export to a cross-site navigation (an attacker's link: the Lax cookie is sent): 403, no export, no admin.audit_exported row", async () => {
    const exportUrl = `${stack.app.url}/admin/audit/export?format=csv`;
    const exported = async () => (await auditEvents(stack.app)).filter((e) => e.event === 'admin.audit_exported').length;
    const before = await exported();
    // A real navigation from another site: the browser sends the admin cookie (SameSite=Lax) and Sec-Fetch-Site: cross-site.
    const page = await admin.navigate(exportUrl, { initiator: 'https://evil.example' });
    expect(page.hops.map((h) => h.secFetchSite)).toEqual(['cross-site']);
    expect(page.status).toBe(403);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-disposition')).toBeNull();
    expect(page.html).not.toContain('seq,ts,event');
    const cookie = admin.cookiesFor(new URL(exportUrl), true, false);
    const get = (site?: string) => fetch(exportUrl, { headers: { cookie, ...(site === undefined ? {} : { 'sec-fetch-site': site }) } });
    for (const site of ['same-site', 'cross-site', 'CROSS-SITE', 'junk']) {
      const res = await get(site);
      expect(res.status, site).toBe(403);
      expect(await res.text(), site).not.toContain('seq,ts,event');
    }
    expect(await exported()).toBe(before);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'admin.rejected' && e.reason === 'cross_site')).toHaveLength(5);
    // From P's own page (same-origin), typed or bookmarked (none), or a client without Fetch Metadata (absent): exported as before.
    for (const site of ['same-origin', 'none', undefined]) {
      const res = await get(site);
      expect(res.status, String(site)).toBe(200);
      expect(res.headers.get('content-disposition'), String(site)).toMatch(/^attachment; filename="audit-.*\.csv"$/);
      expect((await res.text()).split('\n')[0], String(site)).toBe('seq,ts,event,outcome,reason,subject,client_id,ip,request_id,details,prev_hash,hash,key_id');
    }
    expect(await exported()).toBe(before + 3);
  });
});

describe('admin actions › cascade', () => {
  it('revoking a consent ends the gateway token, the refresh token and the upstream token (revocation endpoint called)', async () => {
    const revocationsBefore = stack.upstream.revocations.length;
    const res = await post(admin, '/admin/consents/{consent}/revoke', { csrf: adminCsrf });
    expect(res.hops[0]?.status).toBe(303);
    expect(res.html).toContain(`Revoked consent ${target.consentId}`);
    expect((await mcpPost(`${stack.app.url}/mcp`, target.token, INITIALIZE)).status).toBe(401);
    expect(await refresh(stack.app, target.clientId, target.refresh)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revocations.length).toBeGreaterThan(revocationsBefore);
    expect((await auditEvents(stack.app)).find((e) => e.event === 'admin.consent_revoked')).toMatchObject({ subject: 'root', client_id: target.clientId });
  });

  it('disabling a client refuses new authorizations; deleting it removes the registration', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser('u2'), { login: 'carol' });
    expect((await post(admin, `/admin/clients/${clientId}/disable`, { csrf: adminCsrf })).status).toBe(200);
    expect((await mcpPost(`${stack.app.url}/mcp`, tokens.body.access_token, INITIALIZE)).status).toBe(401);
    const blocked = await fetch(`${stack.app.url}/authorize?client_id=${clientId}&response_type=code`, { redirect: 'manual' });
    expect(blocked.status).toBe(400);
    expect((await post(admin, `/admin/clients/${clientId}/delete`, { csrf: adminCsrf })).status).toBe(400); // unconfirmed
    expect((await post(admin, `/admin/clients/${clientId}/delete`, { csrf: adminCsrf, confirm: 'yes' })).status).toBe(200);
    expect((await rows(stack.app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Client' AND key = ?", clientId))[0].n).toBe(0);
    expect((await auditEvents(stack.app)).filter((e) => e.client_id === clientId).map((e) => e.event)).toEqual(expect.arrayContaining(['admin.client_disabled', 'admin.client_deleted']));
  });
});

describe('admin sessions › timeouts', () => {
  it('a new sign-in ends the admin session the browser carried (review 2026-12-07: a leaked cookie outlived the re-authentication)', async () => {
    const host = new URL(stack.app.url).hostname;
    const browser = new Browser('admin-again');
    await signIn(stack, browser, 'admin', 'root');
    const first = browser.cookie(host, '__Host-mcp-admin') as string;
    expect(first).toBeTruthy();
    for (const name of ['u_session', 'u_session.sig']) browser.setCookie(new URL(stack.upstream.issuer).hostname, name, '');
    await signIn(stack, browser, 'admin', 'root');
    expect(browser.cookie(host, '__Host-mcp-admin')).not.toBe(first);
    const replay = new Browser('admin-replay');
    replay.setCookie(host, '__Host-mcp-admin', first);
    expect((await replay.navigate(`${stack.app.url}/admin`)).status).toBe(401);
  });

  it('ends after ADMIN_IDLE_TTL without requests, and after ADMIN_SESSION_TTL however active (fake clock)', async () => {
    const idle = new Browser('idle-admin');
    await signIn(stack, idle, 'admin', 'root');
    const active = new Browser('active-admin');
    await signIn(stack, active, 'admin', 'root');
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const start = Date.now();
      for (let minutes = 20; minutes <= 8 * 60 + 20; minutes += 20) {
        vi.setSystemTime(start + minutes * 60_000);
        const status = (await active.navigate(`${stack.app.url}/admin`)).status;
        expect(status, `after ${minutes} min`).toBe(minutes < 8 * 60 ? 200 : 401);
        if (minutes === 40) {
          // The idle browser still holds its cookie (8 h), but 40 min without a request is too long.
          expect(idle.cookieNames('127.0.0.1')).toContain('__Host-mcp-admin');
          expect((await idle.navigate(`${stack.app.url}/admin`)).status).toBe(401);
        }
      }
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('admin sign-in › where it may lead', () => {
  it('returns only to P\'s own admin pages, whatever `return` says (no open redirect)', async () => {
    const tries: Array<[string, string]> = [
      ['/admin/audit?event=token.issued', '/admin/audit?event=token.issued'],
      ['https://evil.example/admin', '/admin'],
      ['//evil.example/admin', '/admin'],
      ['/admin//evil.example', '/admin'],
      ['/admin/%2F%2Fevil.example', '/admin'],
      ['/admin/../account', '/admin'],
      // Browsers resolve %2e as a dot (WHATWG URL): these land on /authorize?client_id=x, not on an admin page.
      ['/admin/%2e%2e/authorize?client_id=x', '/admin'],
      ['/admin/%2E%2E/authorize?client_id=x', '/admin'],
      ['/admin/.%2e/authorize?client_id=x', '/admin'],
      ['/admin/x/%2e%2e/%2e%2e/account', '/admin'],
      ['/admin/%2e%2e/admin/audit', '/admin/audit'],
      ['/admin\\evil.example', '/admin'],
      ['/adminx', '/admin'],
    ];
    for (const [requested, landing] of tries) {
      const browser = new Browser(`return-${requested}`);
      let page = await clickSignIn(browser, await browser.navigate(`${stack.app.url}/admin/login?return=${encodeURIComponent(requested)}`));
      page = await browser.submit(page, { login: 'root' });
      if (page.html.includes('name="allow"')) page = await browser.submit(page, { allow: 'yes' });
      expect(page.hops.some((h) => (h.location ?? '').includes('evil.example')), requested).toBe(false);
      expect(new URL(page.url).pathname + new URL(page.url).search, requested).toBe(landing);
    }
  });

  it('a sign-in callback completed by another browser does not sign this one in (login CSRF, AT-12)', async () => {
    const isCallback = (u: string) => u.includes('/upstream/callback');
    const attacker = new Browser('admin-login-attacker');
    let atU = await clickSignIn(attacker, await attacker.navigate(`${stack.app.url}/admin/login`), { stopAt: isCallback });
    atU = await attacker.submit(atU, { login: 'root' }, { stopAt: isCallback });
    if (atU.status !== 0) atU = await attacker.submit(atU, { allow: 'yes' }, { stopAt: isCallback });
    expect(atU.url).toContain('/upstream/callback');
    const sessionsBefore = (await rows(stack.app, 'SELECT count(*) AS n FROM admin_sessions'))[0].n;
    const victim = new Browser('admin-login-victim');
    const page = await victim.navigate(atU.url, { initiator: 'https://evil.example' });
    expect(page.status).toBe(400);
    expect(page.hops.filter((h) => h.location)).toEqual([]);
    expect(victim.cookieNames('127.0.0.1')).not.toContain('__Host-mcp-admin');
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM admin_sessions'))[0].n).toBe(sessionsBefore);
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'upstream.callback_failed', reason: 'missing_cookie' });
  });
});

describe('admin access › ADMIN_SUBJECTS checked on every request', () => {
  it('a subject removed from ADMIN_SUBJECTS (and P restarted) loses its live admin session: 403, audited, nothing done', async () => {
    const own = await startStack({ env: { ADMIN_SUBJECTS: 'root another-admin' } });
    try {
      const { clientId } = await authorizeClient(own, new Browser('user'), { login: 'alice' });
      const root = new Browser('root');
      const csrf = csrfOf(await signIn(own, root, 'admin', 'root'));
      expect((await root.navigate(`${own.app.url}/admin`)).status).toBe(200);

      await own.restart({ ADMIN_SUBJECTS: 'another-admin' });
      expect(root.cookieNames('127.0.0.1')).toContain('__Host-mcp-admin'); // the same session cookie
      const page = await root.navigate(`${own.app.url}/admin`);
      expect(page.status).toBe(403);
      expect(page.html).toContain('Not an administrator');
      const disable = await root.navigate(`${own.app.url}/admin/clients/${encodeURIComponent(clientId)}/disable`, { method: 'POST', body: new URLSearchParams({ csrf, confirm: 'yes' }), initiator: own.app.url });
      expect(disable.status).toBe(403);
      expect(await rows(own.app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', clientId)).toEqual([{ disabled_at: null }]);
      const events = await auditEvents(own.app);
      expect(events.filter((e) => e.event === 'admin.rejected' && e.subject === 'root').map((e) => e.reason)).toEqual(['not_an_admin', 'not_an_admin']);
      expect(events.filter((e) => e.event === 'admin.client_disabled')).toEqual([]);
    } finally {
      await own.close();
    }
  });
});
