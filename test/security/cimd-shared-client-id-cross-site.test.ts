/**
 * Known attack on CIMD (issue 12; AT-06, CONS-16): a CIMD client_id is shared by every user of
 * that client, and anyone can start an authorization with it. A malicious site (or authorization
 * server) sends a victim's browser to P's /authorize with a well-known CIMD client_id the victim
 * already approved, hoping P skips the consent page on the remembered consent and sends a code to
 * the client's redirect URI on the attacker's behalf. P's Sec-Fetch-Site rule
 * (src/consent/decision.ts) holds for CIMD clients as for DCR clients: a navigation another site
 * started is shown the consent page (consent.shown, reason cross_site) and no code is issued
 * without the user's click.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents } from '../helpers/app.js';
import { httpServer, type Listener } from '../helpers/cimd.js';
import { authorizeClient, Browser, buildAuthorization, CLIENT_REDIRECT, startStack, type Stack } from '../helpers/stack.js';

let docs: Listener;
let stack: Stack;
let clientId: string;

beforeAll(async () => {
  docs = await httpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ client_id: `http://127.0.0.1:${docs.port}${req.url}`, client_name: 'Shared Editor', redirect_uris: [CLIENT_REDIRECT], grant_types: ['authorization_code'] }));
  });
  clientId = `http://127.0.0.1:${docs.port}/editor/client.json`;
  stack = await startStack({ env: { CIMD_ALLOWED_HOSTS: `127.0.0.1:${docs.port}`, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true' } });
});

afterAll(async () => {
  await stack?.close();
  await docs?.close();
});

describe('CIMD shared client_id: a cross-site navigation cannot ride a remembered consent', () => {
  it('shows the consent page to a navigation another site started, and issues no code', async () => {
    const victim = new Browser();
    await authorizeClient(stack, victim, { clientId }); // the victim approved this CIMD client earlier

    const auth = buildAuthorization(stack.app, { clientId }); // the attacker's own PKCE and state
    const page = await victim.navigate(auth.url, { initiator: 'https://evil.example', stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
    expect(page.status).toBe(200);
    expect(page.url).not.toContain(CLIENT_REDIRECT);
    expect(page.html).toContain('name="action" value="approve"');
    expect(page.html).toContain('says this is <bdi>Shared Editor</bdi>');
    const shown = (await auditEvents(stack.app)).filter((e) => e.event === 'consent.shown' && e.client_id === clientId);
    expect(shown.at(-1)?.reason).toBe('cross_site');
    const skipped = (await auditEvents(stack.app)).filter((e) => e.event === 'consent.skipped');
    expect(skipped).toEqual([]);
  });

  it('the same navigation started by the user (Sec-Fetch-Site: none) does skip it (the control)', async () => {
    const user = new Browser();
    await authorizeClient(stack, user, { clientId, login: 'carol' });
    const auth = buildAuthorization(stack.app, { clientId });
    const page = await user.navigate(auth.url, { stopAt: (u) => u.startsWith(CLIENT_REDIRECT) });
    expect(page.url.startsWith(CLIENT_REDIRECT)).toBe(true);
    expect(new URL(page.url).searchParams.get('code')).toEqual(expect.any(String));
  });
});
