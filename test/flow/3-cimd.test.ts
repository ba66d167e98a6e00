/**
 * Step 3 with a Client ID Metadata Document (issue 12, DESIGN §10): a client whose client_id is
 * the URL of its metadata completes the whole flow — /authorize, P's consent page (naming the
 * host that vouches for it), U's login, the code at its redirect URI, /token, a refresh, /mcp —
 * with a real document server on loopback under the test-only allowance
 * (CIMD_ALLOWED_HOSTS=127.0.0.1:<port> and DANGEROUSLY_ALLOW_INSECURE_HTTP=true). Runs on both
 * engines (TEST_ENGINE).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { signIn } from '../helpers/admin.js';
import { httpServer, type Listener } from '../helpers/cimd.js';
import { authorizeClient, Browser, buildAuthorization, CLIENT_REDIRECT, drive, refresh, startStack, type Stack } from '../helpers/stack.js';

let docs: Listener;
let stack: Stack;
let clientId: string;

beforeAll(async () => {
  docs = await httpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'max-age=300');
    res.end(
      JSON.stringify({
        client_id: `http://127.0.0.1:${docs.port}${req.url}`,
        client_name: 'Visual Studio Code',
        redirect_uris: [CLIENT_REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
        // not trusted: P keeps none of these
        scope: 'admin',
        jwks_uri: 'https://evil.example/jwks',
        policy_uri: 'https://vscode.example/policy',
        contacts: ['ops@vscode.example'],
        ...(req.url?.startsWith('/links/') ? { client_uri: 'https://vscode.example/', logo_uri: 'https://vscode.example/logo.png' } : {}),
      }),
    );
  });
  clientId = `http://127.0.0.1:${docs.port}/vscode/client.json`;
  stack = await startStack({ env: { CIMD_ALLOWED_HOSTS: `127.0.0.1:${docs.port}`, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true', ADMIN_SUBJECTS: 'root' } });
});

afterAll(async () => {
  await stack?.close();
  await docs?.close();
});

describe('CIMD client: the whole flow through the consent page (issue 12)', () => {
  it('advertises client_id_metadata_document_supported', async () => {
    const metadata = (await (await fetch(`${stack.app.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata.client_id_metadata_document_supported).toBe(true);
    expect(metadata.registration_endpoint).toBe(`${stack.app.url}/register`);
  });

  it('authorizes, names the vouching host on the consent page, issues and refreshes tokens, reaches /mcp', async () => {
    const browser = new Browser();
    const { tokens, result } = await authorizeClient(stack, browser, { clientId });
    expect(tokens.status).toBe(200);
    expect(tokens.body.access_token).toEqual(expect.any(String));
    const html = result.consentPage?.html ?? '';
    expect(html).toContain(`<strong>127.0.0.1:${docs.port}</strong> says this is <bdi>Visual Studio Code</bdi>`);
    expect(html).toContain('A program on this computer'); // the loopback-redirect warning stays
    expect(html).not.toContain('Unverified');

    const refreshed = await refresh(stack.app, clientId, tokens.body.refresh_token);
    expect(refreshed.status).toBe(200);
    const mcp = await fetch(`${stack.app.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${refreshed.body.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
    });
    expect(mcp.status).toBe(200);

    // One fetch; the stored client holds only what the document was trusted for.
    expect(docs.requests.map((r) => r.url)).toEqual(['/vscode/client.json']);
    const [meta] = await rows(stack.app, 'SELECT kind, cimd_url, cimd_fetched_at, cimd_expires_at, cimd_failures, client_name FROM clients_meta WHERE client_id = ?', clientId);
    expect(meta).toMatchObject({ kind: 'cimd', cimd_url: clientId, cimd_failures: 0, client_name: 'Visual Studio Code' });
    expect(Number(meta.cimd_expires_at) - Number(meta.cimd_fetched_at)).toBe(300_000);
    const stored = (await stack.app.runtime.stores.models.find('Client', clientId)) as Record<string, unknown>;
    expect(stored).toMatchObject({ token_endpoint_auth_method: 'none', redirect_uris: [CLIENT_REDIRECT], application_type: 'native' });
    expect(stored).not.toHaveProperty('scope');
    expect(stored).not.toHaveProperty('jwks_uri');
    const events = (await auditEvents(stack.app)).filter((e) => e.event.startsWith('cimd.'));
    expect(events.map((e) => e.event)).toEqual(['cimd.fetched']);
  });

  it('stores only the name, redirect URIs, grant types, https client_uri and logo_uri, and what P derives; the user agent capped with a mark (DESIGN §9)', async () => {
    const linked = `http://127.0.0.1:${docs.port}/links/client.json`;
    const userAgent = `ua-${'u'.repeat(3000)}`;
    const res = await fetch(buildAuthorization(stack.app, { clientId: linked }).url, { headers: { 'user-agent': userAgent }, redirect: 'manual' });
    expect(res.status).toBeLessThan(400);
    const stored = await stack.app.runtime.stores.models.find('Client', linked);
    expect(stored).toEqual({
      client_id: linked,
      client_name: 'Visual Studio Code',
      redirect_uris: [CLIENT_REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      client_uri: 'https://vscode.example/',
      logo_uri: 'https://vscode.example/logo.png',
    });
    const [meta] = await rows(stack.app, 'SELECT user_agent, ip FROM clients_meta WHERE client_id = ?', linked);
    expect(meta).toEqual({ user_agent: `ua-${'u'.repeat(252)}…`, ip: '127.0.0.1' });
  });

  it('a second authorization within the cache lifetime fetches nothing and skips the remembered consent', async () => {
    const browser = new Browser();
    await authorizeClient(stack, browser, { clientId, login: 'bob' });
    const before = docs.requests.length;
    const auth = buildAuthorization(stack.app, { clientId });
    const again = await drive(browser, auth.url, auth.redirectUri, { login: 'bob' });
    expect(again.seen).not.toContain('consent');
    expect(again.callback.searchParams.get('code')).toEqual(expect.any(String));
    expect(docs.requests.length).toBe(before);
  });

  it('the admin console lists the CIMD client with its URL, last fetch, cache expiry and failures', async () => {
    const admin = new Browser();
    await signIn(stack, admin, 'admin', 'root');
    const list = await admin.navigate(`${stack.app.url}/admin/clients?kind=cimd`);
    expect(list.status).toBe(200);
    expect(list.html).toContain('<span class="badge">CIMD</span>');
    expect(list.html).toContain(clientId);
    expect(list.html).toMatch(/fetched [^,]+, cached until [^,]+, 0 failures/);
    const detail = await admin.navigate(`${stack.app.url}/admin/clients/${encodeURIComponent(clientId)}`);
    expect(detail.html).toContain('Metadata document (CIMD)');
    expect(detail.html).toContain('Cached until');
    const dcrOnly = await admin.navigate(`${stack.app.url}/admin/clients?kind=dcr`);
    expect(dcrOnly.html).not.toContain(clientId);
  });
});
