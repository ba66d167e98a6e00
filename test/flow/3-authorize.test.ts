/**
 * Authorization requests (AUTHZ-03..13) up to the interaction: default scope (F6), unknown scope
 * and foreign resource refused, every valid request handed to P's interaction — the provider
 * never issues a code on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { authorizeUrl, pkcePair } from '../helpers/pkce.js';
import { CLIENT_ERROR_DESCRIPTIONS, SCOPE_NOT_ALLOWED_FOR_CLIENT } from '../../src/provider/error-redirect.js';

let app: TestApp;
let clientId: string;
const redirectUri = 'http://127.0.0.1:33418/callback';
beforeAll(async () => {
  app = await startTestApp();
  clientId = (await registerClient(app)).client_id;
});
afterAll(() => app.close());

function authorize(params: Record<string, string | undefined>) {
  return fetch(
    authorizeUrl(app.url, { client_id: clientId, redirect_uri: redirectUri, response_type: 'code', code_challenge: pkcePair().challenge, code_challenge_method: 'S256', state: 'xyz', ...params }),
    { redirect: 'manual' },
  );
}

function errorRedirect(res: Response) {
  expect(res.status).toBe(303);
  const location = new URL(res.headers.get('location') as string);
  expect(location.origin + location.pathname).toBe(redirectUri);
  return Object.fromEntries(location.searchParams);
}

describe('authorization request', () => {
  it('hands a valid request to P\'s interaction, with the default scope and resource filled in (F3, F6, AUTHZ-06)', async () => {
    const res = await authorize({});
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(new RegExp(`^/interaction/[\\w-]+$`));
    const [interaction] = await rows(app, "SELECT payload FROM oidc_models WHERE model = 'Interaction'");
    expect(interaction).toBeDefined();
    expect(JSON.parse(interaction.payload)).toHaveProperty('sealed');
  });

  it('refuses a scope P does not offer with invalid_scope, state and iss (AUTHZ-07)', async () => {
    expect(errorRedirect(await authorize({ scope: 'mcp:tools admin:*' }))).toEqual({
      error: 'invalid_scope',
      error_description: CLIENT_ERROR_DESCRIPTIONS.invalid_scope, // our wording, not the requested scope (AUTHZ-12)
      state: 'xyz',
      iss: app.url,
    });
  });

  it("tells a scope P offers but the client's registration does not allow from one P does not offer (review 2026-12-08)", async () => {
    const narrow = (await registerClient(app, { scope: 'mcp:tools' })).client_id as string;
    expect(errorRedirect(await authorize({ client_id: narrow, scope: 'mcp:tools openid' }))).toEqual({
      error: 'invalid_scope',
      error_description: SCOPE_NOT_ALLOWED_FOR_CLIENT, // was: "not offered by this server", though openid is offered
      state: 'xyz',
      iss: app.url,
    });
    expect(SCOPE_NOT_ALLOWED_FOR_CLIENT).not.toBe(CLIENT_ERROR_DESCRIPTIONS.invalid_scope);
    // A scope not offered at all keeps its own wording, for this client too.
    expect(errorRedirect(await authorize({ client_id: narrow, scope: 'mcp:tools admin:*' })).error_description).toBe(CLIENT_ERROR_DESCRIPTIONS.invalid_scope);
  });

  it('refuses a resource other than the MCP resource with invalid_target (AUTHZ-05)', async () => {
    for (const resource of ['https://other.example/mcp', `${app.url}/mcp/`, app.url, `${app.url}/mcp#x`]) {
      const params = errorRedirect(await authorize({ resource }));
      expect(params.error, resource).toMatch(/^invalid_(target|request)$/);
      expect(params.iss).toBe(app.url);
    }
  });

  it('accepts the MCP resource spelled exactly as in the metadata', async () => {
    const res = await authorize({ resource: `${app.url}/mcp`, scope: 'mcp:tools offline_access' });
    expect(res.headers.get('location')).toMatch(/^\/interaction\//);
  });

  it('never answers prompt=none with a code (AUTHZ-13)', async () => {
    const params = errorRedirect(await authorize({ prompt: 'none' }));
    expect(params.error).toBe('login_required');
    expect(params).not.toHaveProperty('code');
  });

  it('refuses response types other than code (the error travels in the fragment, as for token responses)', async () => {
    const res = await authorize({ response_type: 'token' });
    const location = new URL(res.headers.get('location') as string);
    expect(location.origin + location.pathname).toBe(redirectUri);
    const params = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
    expect(params).toMatchObject({ error: 'unsupported_response_type', state: 'xyz', iss: app.url });
  });

  it('issues no code anywhere: the interaction is where consent happens', async () => {
    const res = await authorize({});
    const page = await fetch(`${app.url}${res.headers.get('location')}`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(page.headers.get('location')).toBeNull();
    expect((await rows(app, "SELECT count(*) AS n FROM oidc_models WHERE model IN ('AuthorizationCode', 'AccessToken', 'Grant')"))[0].n).toBe(0);
    expect((await auditEvents(app)).filter((e) => e.event === 'token.issued')).toEqual([]);
  });
});
