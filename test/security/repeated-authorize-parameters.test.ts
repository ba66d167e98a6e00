/**
 * Finding (issue 9 §5): two `resource` parameters at /authorize passed to the consent page and
 * failed only after the upstream login. Repeated parameters (AUTHZ-10, RFC 6749 §3.1) — `resource`
 * included, since P grants exactly one resource per authorization — are refused before any
 * interaction: P's error page, no redirect, no interaction row, U never contacted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';
import { Browser, CLIENT_REDIRECT, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let clientId: string;
beforeAll(async () => {
  stack = await startStack({ env: { GATEWAY_ROUTES: '/api/things=http://127.0.0.1:1/v1' } });
  clientId = (await registerClient(stack.app)).client_id;
});
afterAll(() => stack.close());

const interactions = async () => (await rows(stack.app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Interaction'"))[0].n as number;
const base = () => authorizeUrl(stack.app.url, { client_id: clientId, redirect_uri: CLIENT_REDIRECT, response_type: 'code', code_challenge: pkcePair().challenge, code_challenge_method: 'S256', state: 'st', scope: 'mcp:tools' });
const enc = encodeURIComponent;

describe('two resource parameters at /authorize pass to the consent page', () => {
  it.each([
    ['two different resources', () => `&resource=${enc(`${stack.app.url}/mcp`)}&resource=${enc(`${stack.app.url}/api/things`)}`],
    ['the same resource twice', () => `&resource=${enc(`${stack.app.url}/mcp`)}&resource=${enc(`${stack.app.url}/mcp`)}`],
    ['a repeated scope', () => '&scope=openid'],
    ['a repeated state', () => '&state=other'],
    ['a repeated code_challenge', () => `&code_challenge=${pkcePair().challenge}`],
    ['a repeated response_type', () => '&response_type=code'],
    ['a repeated client_id', () => `&client_id=${enc(clientId)}`],
    ['a repeated redirect_uri (both registered)', () => `&redirect_uri=${enc(CLIENT_REDIRECT)}`],
    ['a repeated unknown parameter', () => '&x_extension=1&x_extension=2'],
  ])('%s: P\'s error page, no redirect, no interaction, U untouched', async (_label, extra) => {
    const before = { interactions: await interactions(), upstream: stack.upstream.authorizations.length };
    const browser = new Browser();
    const page = await browser.navigate(`${base()}${extra()}`);
    expect(page.status).toBe(400);
    expect(page.hops.map((h) => h.location)).toEqual([undefined]); // one request, no Location
    expect(page.html).toContain('invalid_request');
    expect(page.html).not.toContain('name="action" value="approve"'); // not the consent page
    expect(await interactions()).toBe(before.interactions);
    expect(stack.upstream.authorizations.length).toBe(before.upstream);
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'authorization.rejected', reason: 'invalid_request' });
  });

  it('says why for resource, in P\'s own words', async () => {
    const page = await new Browser().navigate(`${base()}&resource=${enc(`${stack.app.url}/mcp`)}&resource=${enc(`${stack.app.url}/api/things`)}`);
    expect(page.html).toContain('grants exactly one resource per authorization');
    expect((await auditEvents(stack.app)).at(-1)?.details).toContain('"repeated":["resource"]');
  });

  it('still accepts one resource (either of P\'s) and shows the consent page', async () => {
    for (const resource of [`${stack.app.url}/mcp`, `${stack.app.url}/api/things`]) {
      const page = await new Browser().navigate(`${base()}&resource=${enc(resource)}`);
      expect(page.html, resource).toContain('name="action" value="approve"');
    }
  });
});
