/**
 * AT-01 / AT-02 — the confused deputy. U (like GitHub) silently re-approves P's static client
 * for a browser that approved it once. Without P's own per-user, per-browser consent, a link to
 * an attacker's client would carry the victim's upstream access to the attacker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, isConsentPage, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let victim: Browser;
beforeAll(async () => {
  stack = await startStack();
  // The victim once connected a legitimate client: U now remembers the victim's approval of P.
  victim = new Browser('victim');
  await authorizeClient(stack, victim, { login: 'victim' });
});
afterAll(() => stack.close());

const EVIL = 'https://evil.example/cb';
const reachedEvil = (hops: { url: string; location?: string | undefined }[]) => hops.some((h) => h.url.startsWith('https://evil.example') || h.location?.startsWith('https://evil.example'));

describe('AT-01 full confused-deputy chain', () => {
  it('shows P\'s consent page to the victim; U sees no request and nothing reaches evil.example', async () => {
    const attackerClient = await registerClient(stack.app, { client_name: 'Claude', redirect_uris: [EVIL] });
    const link = buildAuthorization(stack.app, { clientId: attackerClient.client_id, redirectUri: EVIL });
    const upstreamBefore = stack.upstream.authorizations.length;

    // The victim clicks the attacker's link on the attacker's page.
    const page = await victim.navigate(link.url, { initiator: 'https://evil.example', stopAt: (u) => u.startsWith('https://evil.example') });

    expect(page.status).toBe(200);
    expect(isConsentPage(page)).toBe(true);
    expect(page.html).toContain('<p class="host">evil.example</p>');
    expect(page.html).toContain('This is probably not Claude.');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(reachedEvil(page.hops)).toBe(false);
    expect(stack.upstream.authorizations.length).toBe(upstreamBefore);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_transactions WHERE client_id = ?', attackerClient.client_id))[0].n).toBe(0);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM consents WHERE client_id = ?', attackerClient.client_id))[0].n).toBe(0);
    const codes = (await rows(stack.app, "SELECT payload FROM oidc_models WHERE model = 'AuthorizationCode'")).map((r) => JSON.parse(r.payload));
    expect(codes.filter((c) => c.clientId === attackerClient.client_id)).toHaveLength(0);
  });

  it('fails against the vulnerable design: with consent skipped, U would answer the victim silently', async () => {
    // Demonstrates the precondition the attack relies on: U approves P's client for the victim
    // without asking (a remembered approval), so P's own page is the only barrier.
    const client = await registerClient(stack.app);
    const auth = buildAuthorization(stack.app, { clientId: client.client_id });
    const result = await drive(victim, auth.url, auth.redirectUri, { login: 'victim' });
    expect(result.seen).toEqual(['consent']); // no U login, no U consent: silently approved at U
  });
});

describe('AT-02 consent keyed by client_id only', () => {
  it('the attacker approving its own client does not approve it for the victim', async () => {
    const attacker = new Browser('attacker');
    const attackerClient = await registerClient(stack.app, { client_name: 'Notes', redirect_uris: [EVIL] });
    const own = buildAuthorization(stack.app, { clientId: attackerClient.client_id, redirectUri: EVIL });
    const approved = await drive(attacker, own.url, EVIL, { login: 'mallory' });
    expect(approved.callback.searchParams.get('code')).toBeTruthy();
    expect(await rows(stack.app, 'SELECT subject FROM consents WHERE client_id = ?', attackerClient.client_id)).toEqual([{ subject: 'mallory' }]);

    // Same link, sent to the victim.
    const upstreamBefore = stack.upstream.authorizations.length;
    const link = buildAuthorization(stack.app, { clientId: attackerClient.client_id, redirectUri: EVIL });
    const page = await victim.navigate(link.url, { stopAt: (u) => u.startsWith('https://evil.example') });
    expect(isConsentPage(page)).toBe(true);
    expect(reachedEvil(page.hops)).toBe(false);
    expect(stack.upstream.authorizations.length).toBe(upstreamBefore);

    // And even the attacker's own later requests are asked again when they come cross-site.
    const again = await attacker.navigate(link.url, { initiator: 'https://evil.example', stopAt: (u) => u.startsWith('https://evil.example') });
    expect(isConsentPage(again)).toBe(true);
  });
});
