/**
 * P's consent page (DESIGN §2 step 4; CONS-05..07, CONS-09, CONS-17; AT-05, AT-17, AT-19).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, isConsentPage, startStack, type Stack } from '../helpers/stack.js';
import { parseForm } from '../helpers/browser.js';
import { cspDirectives } from '../helpers/csp.js';
import { CLIENT_ERROR_DESCRIPTIONS } from '../../src/provider/error-redirect.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

async function openConsent(browser: Browser, register: Record<string, unknown> = {}, request: { scope?: string; redirectUri?: string; prompt?: string } = {}) {
  const client = await registerClient(stack.app, register);
  const auth = buildAuthorization(stack.app, { clientId: client.client_id, ...request });
  const page = await browser.navigate(auth.url, { stopAt: (u) => u.startsWith(auth.redirectUri) });
  return { client, auth, page };
}

describe('consent page › content', () => {
  it('names the client as unverified and shows id, redirect host, scopes, upstream and resource (CONS-05/06/07)', async () => {
    // offline_access counts only with prompt=consent (OpenID Connect Core §11), as SDK v2 sends it.
    const { client, page } = await openConsent(new Browser(), { client_name: 'Acme Notes' }, { scope: 'mcp:tools offline_access', prompt: 'consent' });
    expect(page.status).toBe(200);
    expect(isConsentPage(page)).toBe(true);
    const text = page.html;
    expect(text).toContain('Allow <bdi class="client-name">Acme Notes</bdi> to use your Fake Upstream account?');
    expect(text).toContain('Unverified');
    expect(text).toContain('registered by the application itself');
    expect(text).toContain(`<code>${client.client_id}</code>`);
    expect(text).toContain('<p class="host">127.0.0.1:33418</p>');
    expect(text).toContain('A program on this computer');
    expect(text).toContain('Use the tools of the MCP server on your behalf');
    expect(text).toContain('Stay connected when you are not using the application');
    expect(text).toContain('<code>openid</code>, <code>email</code>');
    expect(text).toContain(`<code>${stack.app.url}/mcp</code>`);
    expect(text).toMatch(/<button type="submit" name="action" value="deny"/);
    expect(text).toMatch(/<button type="submit" name="action" value="approve"/);
  });

  it('shows an https redirect host prominently and no loopback note', async () => {
    const { page } = await openConsent(new Browser(), { redirect_uris: ['https://notes.example.com/oauth/cb'] }, { redirectUri: 'https://notes.example.com/oauth/cb' });
    expect(page.html).toContain('<p class="host">notes.example.com</p>');
    expect(page.html).not.toContain('A program on this computer');
  });

  it('warns when the name imitates a well-known client whose host it does not use (AT-17)', async () => {
    const { page } = await openConsent(new Browser(), { client_name: 'Claude', redirect_uris: ['https://evil.example/cb'] }, { redirectUri: 'https://evil.example/cb' });
    expect(page.html).toContain('This is probably not Claude.');
    expect(page.html).toContain('sends you to evil.example');
    const real = await openConsent(new Browser(), { client_name: 'Claude', redirect_uris: ['https://claude.ai/api/mcp/auth_callback'] }, { redirectUri: 'https://claude.ai/api/mcp/auth_callback' });
    expect(real.page.html).not.toContain('This is probably not');
  });

  it('forbids framing, sends no referrer, caches nothing and loads only its own stylesheet (CONS-09, CONS-17, AT-05)', async () => {
    const { page } = await openConsent(new Browser());
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const csp = cspDirectives(page.headers.get('content-security-policy'));
    expect(csp['frame-ancestors']).toEqual(["'none'"]);
    expect(csp['script-src']).toEqual(["'none'"]);
    // F15: the form may lead to U and, after it, to the client's redirect URI — nowhere else.
    expect(csp['form-action']).toEqual(["'self'", stack.upstream.issuer, 'http://127.0.0.1:33418']);
    const refs = [...page.html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs).toEqual(['/assets/app.css']);
    expect(page.html).not.toMatch(/<script|<iframe|<img/);
  });

  it('creates no upstream transaction, no state cookie and no request to U when shown (STATE-02/03, CONS-03)', async () => {
    const before = stack.upstream.authorizations.length;
    const browser = new Browser();
    const { page } = await openConsent(browser);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions'))[0].n).toBe(0);
    expect(browser.cookieNames('127.0.0.1')).not.toContain('__Host-mcp-tx');
    expect(page.html).not.toContain(stack.upstream.issuer + '/auth');
    expect(stack.upstream.authorizations.length).toBe(before);
    const csrfCookie = page.hops.at(-1)?.setCookies.find((c) => c.startsWith('__Host-mcp-csrf='));
    expect(csrfCookie).toMatch(/; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    expect(csrfCookie).not.toMatch(/Domain=/i);
  });

  it('keeps a valid form when the page is loaded twice (checklist §5.10)', async () => {
    const browser = new Browser();
    const { auth, page } = await openConsent(browser);
    const again = await browser.navigate(page.url);
    expect(parseForm(again.html)?.fields.csrf).toBe(parseForm(page.html)?.fields.csrf);
    const result = await drive(browser, page.url, auth.redirectUri);
    expect(result.callback.searchParams.get('code')).toBeTruthy();
  });

  it('answers the Approve POST with 303, never 307/308 (CONS-18, AT-19)', async () => {
    const browser = new Browser();
    const { page } = await openConsent(browser);
    const next = await browser.submit(page, { action: 'approve' }, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
    expect(next.hops[0]).toMatchObject({ method: 'POST', status: 303 });
    expect(next.hops[0]?.location?.startsWith(`${stack.upstream.issuer}/auth?`)).toBe(true);
  });
});

describe('consent page › deny', () => {
  it('sends access_denied with state and iss to the client and never contacts U (CONS-15)', async () => {
    const before = stack.upstream.authorizations.length;
    const browser = new Browser();
    const { client, auth } = await openConsent(browser);
    const result = await drive(browser, auth.url, auth.redirectUri, { deny: true });
    expect(Object.fromEntries(result.callback.searchParams)).toEqual({ error: 'access_denied', error_description: CLIENT_ERROR_DESCRIPTIONS.access_denied, state: auth.state, iss: stack.app.url });
    expect(stack.upstream.authorizations.length).toBe(before);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', client.client_id))[0].n).toBe(0);
    expect((await auditEvents(stack.app)).filter((e) => e.client_id === client.client_id).map((e) => e.event)).toEqual([
      'registration.accepted', 'consent.shown', 'consent.shown', 'consent.denied', 'authorization.rejected',
    ]);
  });
});
