/**
 * Connected apps (/account, CONS-19): a user sees the applications they approved and revokes
 * them; the next authorization asks again and the old tokens stop working. Only their own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, startStack, type Stack } from '../helpers/stack.js';
import { csrfOf, signIn } from '../helpers/admin.js';
import { mcpPost, INITIALIZE } from '../helpers/mcp-http.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

describe('/account', () => {
  it('lists the user\'s approvals and revokes one with the cascade; the next authorization asks again', async () => {
    const browser = new Browser('alice');
    const first = await authorizeClient(stack, browser, { login: 'alice', register: { client_name: 'Notes App' } });
    await authorizeClient(stack, browser, { login: 'alice', register: { client_name: 'Calendar App' } });
    await authorizeClient(stack, new Browser('mallory'), { login: 'mallory', register: { client_name: 'Mallory App' } });

    const page = await browser.navigate(`${stack.app.url}/account`); // the consent flow opened P's session
    expect(page.status).toBe(200);
    expect(page.html).toContain('Notes App');
    expect(page.html).toContain('Calendar App');
    expect(page.html).not.toContain('Mallory App');
    expect(page.html).toContain('<strong>127.0.0.1:33418</strong>');
    const [consent] = await rows(stack.app, 'SELECT id FROM consents WHERE client_id = ?', first.clientId);
    const revoked = await browser.navigate(`${stack.app.url}/account/consents/${consent.id}/revoke`, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: stack.app.url });
    expect(revoked.hops[0]?.status).toBe(303);
    expect(revoked.html).toContain('Revoked.');
    expect(revoked.html).not.toContain('Notes App');
    expect((await mcpPost(`${stack.app.url}/mcp`, first.tokens.body.access_token, INITIALIZE)).status).toBe(401);
    expect((await auditEvents(stack.app)).find((e) => e.event === 'account.consent_revoked')).toMatchObject({ subject: 'alice', client_id: first.clientId });
    const again = buildAuthorization(stack.app, { clientId: first.clientId });
    // P asks again (and so does U: its grant was revoked at its revocation endpoint).
    expect((await drive(browser, again.url, again.redirectUri)).seen[0]).toBe('consent');
  });

  it('cannot revoke someone else\'s consent, and needs the CSRF token', async () => {
    const victim = await authorizeClient(stack, new Browser('victim'), { login: 'victim' });
    const [consent] = await rows(stack.app, 'SELECT id FROM consents WHERE client_id = ?', victim.clientId);
    const attacker = new Browser('eve');
    const page = await signIn(stack, attacker, 'account', 'eve');
    expect(page.status).toBe(200);
    const res = await attacker.navigate(`${stack.app.url}/account/consents/${consent.id}/revoke`, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: stack.app.url });
    expect(res.status).toBe(404);
    const noToken = await attacker.navigate(`${stack.app.url}/account/consents/${consent.id}/revoke`, { method: 'POST', body: new URLSearchParams({}), initiator: stack.app.url });
    expect(noToken.status).toBe(403);
    expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE id = ?', consent.id)).toEqual([{ revoked_at: null }]);
    // Both attempts are on record, under the signed-in user (review 2026-12-07: the first left no row).
    const refused = (await auditEvents(stack.app)).filter((e) => e.event === 'account.rejected' && e.subject === 'eve');
    expect(refused.map((e) => e.reason)).toEqual(['not_found', 'csrf']);
    expect(JSON.parse(refused[0]!.details as string)).toEqual({ consent_id: String(consent.id) });
  });

  it('asks an anonymous visitor to sign in, and signs them in through the upstream', async () => {
    const browser = new Browser('newbie');
    const anonymous = await browser.navigate(`${stack.app.url}/account`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.html).toContain('/account/login');
    const page = await signIn(stack, browser, 'account', 'newbie');
    expect(page.status).toBe(200);
    expect(page.html).toContain('You have not approved any application');
    const out = await browser.navigate(`${stack.app.url}/account/logout`, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: stack.app.url });
    expect(out.status).toBe(401);
    expect((await auditEvents(stack.app)).filter((e) => e.subject === 'newbie').map((e) => e.event)).toEqual(['account.signed_in', 'account.signed_out']);
  });

  it('a completed sign-in gets a new session and ends the one the browser carried — another user\'s, or the same user\'s (review 2026-12-07)', async () => {
    const host = new URL(stack.app.url).hostname;
    const upstreamHost = new URL(stack.upstream.issuer).hostname;
    const signOutOfU = (browser: Browser) => ['u_session', 'u_session.sig'].forEach((name) => browser.setCookie(upstreamHost, name, ''));
    const replayed = async (cookie: string) => {
      const other = new Browser('replay');
      other.setCookie(host, '__Host-mcp-session', cookie);
      return (await other.navigate(`${stack.app.url}/account`)).status;
    };
    const browser = new Browser('shared');
    await signIn(stack, browser, 'account', 'carol');
    const carols = browser.cookie(host, '__Host-mcp-session') as string;
    expect(await replayed(carols), 'the cookie works from another browser (a bearer cookie)').toBe(200);
    // The same user signs in again at U: a new id; the old one is over.
    signOutOfU(browser);
    await signIn(stack, browser, 'account', 'carol');
    const again = browser.cookie(host, '__Host-mcp-session') as string;
    expect(again).not.toBe(carols);
    expect(await replayed(carols), "the same user's earlier session ended").toBe(401);
    // Another user signs in in this browser: carol's session is over.
    signOutOfU(browser);
    const page = await signIn(stack, browser, 'account', 'dan');
    expect(page.html).toContain('dan');
    expect(await replayed(again), "the previous user's session ended").toBe(401);
    expect(await rows(stack.app, "SELECT subject FROM browser_sessions WHERE subject IN ('carol', 'dan')")).toEqual([{ subject: 'dan' }]);
  });
});
