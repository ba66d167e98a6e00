/**
 * U's redirect back to P (STATE-04..08, UP-05..09), for the OIDC and the GitHub presets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, isConsentPage, startStack, type Stack } from '../helpers/stack.js';
import { CLIENT_ERROR_DESCRIPTIONS } from '../../src/provider/error-redirect.js';

describe('upstream callback › OIDC upstream', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());

  it('records consent, seals U\'s tokens, opens P\'s session and sends the client code, state and iss', async () => {
    const browser = new Browser();
    const { clientId, tokens, result, auth } = await authorizeClient(stack, browser, { login: 'alice' });
    expect(result.seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);
    expect(result.callback.searchParams.get('state')).toBe(auth.state);
    expect(result.callback.searchParams.get('iss')).toBe(stack.app.url);
    expect(tokens.status).toBe(200);
    const [consent] = await rows(stack.app, 'SELECT * FROM consents WHERE client_id = ?', clientId);
    expect(consent).toMatchObject({ subject: 'alice', redirect_uri: auth.redirectUri, resource: `${stack.app.url}/mcp`, scopes: 'mcp:tools', upstream_scopes: 'openid email', revoked_at: null });
    expect(consent.expires_at - consent.granted_at).toBe(90 * 86_400_000);
    const upstreamToken = stack.upstream.issued.find((t) => t.sub === 'alice')?.token as string;
    const [sealed] = await rows(stack.app, 'SELECT * FROM upstream_tokens WHERE grant_id = ?', consent.grant_id);
    expect(sealed.sealed_access.startsWith('v1.')).toBe(true);
    expect(JSON.stringify(await rows(stack.app, 'SELECT * FROM upstream_tokens'))).not.toContain(upstreamToken);
    expect((await stack.app.runtime.stores.upstreamTokens.get(consent.grant_id))?.accessToken).toBe(upstreamToken);
    expect(browser.cookieNames('127.0.0.1')).toContain('__Host-mcp-session');
    expect(await rows(stack.app, 'SELECT subject FROM browser_sessions')).toEqual([{ subject: 'alice' }]);
    expect((await auditEvents(stack.app)).filter((e) => e.client_id === clientId).map((e) => e.event)).toEqual([
      'registration.accepted', 'consent.shown', 'consent.approved', 'upstream.redirected', 'upstream.callback_succeeded', 'consent.recorded', 'token.issued',
    ]);
    // UP-07: P's token response carries no upstream token.
    expect(JSON.stringify(tokens.body)).not.toContain(upstreamToken);
  });

  it('relays U\'s error as access_denied through P\'s page, escaping U\'s text (UP-09)', async () => {
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const browser = new Browser();
    const page = await browser.navigate(auth.url);
    const toU = await browser.submit(page, { action: 'approve' }, { stopAt: (u) => u.startsWith(stack.upstream.issuer) });
    const state = new URL(toU.hops[0]?.location as string).searchParams.get('state') as string;
    const callback = `${stack.app.url}/upstream/callback?error=access_denied&error_description=${encodeURIComponent('<script>alert(1)</script>')}&state=${state}`;
    const errorPage = await browser.navigate(callback, { initiator: stack.upstream.issuer });
    expect(errorPage.status).toBe(502);
    expect(errorPage.html).toContain('Fake Upstream did not complete the sign-in (it answered “access_denied”)');
    expect(errorPage.html).not.toContain('<script>alert(1)');
    const back = await drive(browser, new URL(/href="([^"]+)" id="return"/.exec(errorPage.html)?.[1] as string, stack.app.url).href, auth.redirectUri);
    expect(Object.fromEntries(back.callback.searchParams)).toEqual({ error: 'access_denied', error_description: CLIENT_ERROR_DESCRIPTIONS.access_denied, state: auth.state, iss: stack.app.url });
    expect((await auditEvents(stack.app)).filter((e) => e.client_id === client.client_id).map((e) => `${e.event}:${e.reason}`)).toContain('upstream.callback_failed:upstream_error');
  });

  it('shows a clear page, never a blank 500, when U\'s token endpoint fails; the client gets server_error', async () => {
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const browser = new Browser();
    const page = await browser.navigate(auth.url);
    const upstreamLogin = await browser.submit(page, { action: 'approve' });
    stack.upstream.setTokenEndpointFault({ status: 503 });
    try {
      let last = await browser.submit(upstreamLogin, { login: 'bob' });
      if (last.html.includes('name="allow"')) last = await browser.submit(last, { allow: 'yes' });
      expect(last.status).toBe(502);
      expect(last.html).toContain('The sign-in at Fake Upstream could not be completed. No access was granted.');
      const back = await drive(browser, new URL(/href="([^"]+)" id="return"/.exec(last.html)?.[1] as string, stack.app.url).href, auth.redirectUri);
      expect(back.callback.searchParams.get('error')).toBe('server_error');
      expect(back.callback.searchParams.get('code')).toBeNull();
    } finally {
      stack.upstream.setTokenEndpointFault(undefined);
    }
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', client.client_id))[0].n).toBe(0);
  });

  it('refuses an authorization response whose iss is not U\'s (RFC 9207, UP-05)', async () => {
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const browser = new Browser();
    const page = await browser.navigate(auth.url);
    const upstreamLogin = await browser.submit(page, { action: 'approve' });
    let atU = await browser.submit(upstreamLogin, { login: 'carol' }, { stopAt: (u) => u.startsWith(`${stack.app.url}/upstream/callback`) });
    if (atU.status !== 0) atU = await browser.submit(atU, { allow: 'yes' }, { stopAt: (u) => u.startsWith(`${stack.app.url}/upstream/callback`) });
    const tampered = new URL(atU.url);
    tampered.searchParams.set('iss', 'https://evil-issuer.example');
    const result = await browser.navigate(tampered.href, { initiator: stack.upstream.issuer });
    expect(result.status).toBe(502);
    expect(result.html).toContain('issuer mismatch');
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'upstream.callback_failed', reason: 'iss_mismatch' });
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', client.client_id))[0].n).toBe(0);
  });

  it('accepts only GET (STATE-08)', async () => {
    const res = await fetch(`${stack.app.url}/upstream/callback?state=x&code=y`, { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET');
  });
});

describe('upstream callback › GitHub preset against a GitHub-shaped server', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ upstream: 'github' });
  });
  afterAll(() => stack.close());

  it('logs in through the OAuth 2 endpoints, takes the numeric id as subject, and U remembers the browser', async () => {
    const browser = new Browser();
    const first = await authorizeClient(stack, browser, { login: 'octocat' });
    expect(first.result.seen).toEqual(['consent', 'upstream-login']);
    expect(first.tokens.status).toBe(200);
    expect(await rows(stack.app, 'SELECT subject FROM consents')).toEqual([{ subject: '583231' }]);
    expect(await rows(stack.app, 'SELECT display_name FROM browser_sessions')).toEqual([{ display_name: 'octocat' }]);
    expect(stack.upstream.authorizations[0]?.query).toMatchObject({ client_id: stack.upstream.clientId, scope: 'read:user', code_challenge_method: 'S256', redirect_uri: `${stack.app.url}/upstream/callback` });

    // A second client in the same browser: P asks again; GitHub does not.
    const second = await authorizeClient(stack, browser);
    expect(second.result.seen).toEqual(['consent']);
    expect(second.tokens.status).toBe(200);
    expect(isConsentPage(second.result.consentPage as never)).toBe(true);
  });

  it('shows GitHub\'s token error on P\'s page (GitHub answers errors with 200)', async () => {
    const browser = new Browser();
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const page = await browser.navigate(auth.url);
    const login = await browser.submit(page, { action: 'approve' }, { stopAt: (u) => u.includes('/upstream/callback') });
    const atGithub = await browser.navigate(login.url, { initiator: stack.app.url, stopAt: (u) => u.includes('/upstream/callback') });
    const form = atGithub.status === 0 ? atGithub : await browser.submit(atGithub, { login: 'mallory' }, { stopAt: (u) => u.includes('/upstream/callback') });
    const callback = new URL(form.url);
    callback.searchParams.set('code', 'not-a-real-code');
    const result = await browser.navigate(callback.href, { initiator: stack.upstream.issuer });
    expect(result.status).toBe(502);
    expect(result.html).toContain('could not be completed');
    const failed = (await auditEvents(stack.app)).at(-1);
    expect(failed).toMatchObject({ event: 'upstream.callback_failed', reason: 'exchange_failed' });
    // GitHub's own code, from its 200 answer (src/upstream/presets.ts githubTokenRefusals), not "malformed response".
    expect(JSON.parse(failed?.details as string)).toMatchObject({ upstream_error: 'bad_verification_code' });
  });
});
