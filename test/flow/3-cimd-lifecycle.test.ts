/**
 * A CIMD client over time (issue 12, src/cimd/clients.ts): a document served with `no-store` is
 * fetched for every authorization and a changed document takes effect; a re-fetch that fails
 * stops the authorization (no stale fallback, CIMD-06/07) and is counted in clients_meta (the
 * admin console's failures); a client an admin disabled is not fetched at all and stays unknown;
 * /token with a CIMD client_id P never stored resolves it there, and refuses it as invalid_client
 * when its document cannot be used. Loopback document server under the test allowance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/index.js';
import { auditEvents, rows, TEST_SECRET_KEY } from '../helpers/app.js';
import { databaseEnv } from '../helpers/engine.js';
import { httpServer, type Listener } from '../helpers/cimd.js';
import { authorizeClient, Browser, buildAuthorization, CLIENT_REDIRECT, startStack, type Stack } from '../helpers/stack.js';

let docs: Listener;
let stack: Stack;
/** what the document server answers, per path */
const served = new Map<string, { status: number; name: string; redirect: string }>();

beforeAll(async () => {
  docs = await httpServer((req, res) => {
    const entry = served.get(req.url ?? '') ?? { status: 404, name: '', redirect: '' };
    res.statusCode = entry.status;
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'no-store');
    res.end(JSON.stringify({ client_id: `http://127.0.0.1:${docs.port}${req.url}`, client_name: entry.name, redirect_uris: [entry.redirect] }));
  });
  stack = await startStack({ env: { CIMD_ALLOWED_HOSTS: `127.0.0.1:${docs.port}`, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true' } });
});

afterAll(async () => {
  await stack?.close();
  await docs?.close();
});

const idOf = (path: string) => `http://127.0.0.1:${docs.port}${path}`;

async function authorizePage(clientId: string) {
  const auth = buildAuthorization(stack.app, { clientId });
  return fetch(auth.url, { redirect: 'manual', headers: { accept: 'text/html' } });
}

describe('CIMD client lifecycle', () => {
  it('re-fetches a no-store document each time: a change takes effect, a failure stops the authorization and is counted', async () => {
    const path = '/lifecycle/client.json';
    const clientId = idOf(path);
    served.set(path, { status: 200, name: 'First Name', redirect: CLIENT_REDIRECT });
    await authorizeClient(stack, new Browser(), { clientId });
    served.set(path, { status: 200, name: 'Second Name', redirect: CLIENT_REDIRECT });
    const renamed = await authorizeClient(stack, new Browser(), { clientId, login: 'bob' });
    expect(renamed.result.consentPage?.html).toContain('says this is <bdi>Second Name</bdi>');

    served.set(path, { status: 500, name: 'x', redirect: CLIENT_REDIRECT });
    const res = await authorizePage(clientId);
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    const [meta] = await rows(stack.app, 'SELECT cimd_failures, cimd_last_error, client_name FROM clients_meta WHERE client_id = ?', clientId);
    expect(meta).toMatchObject({ cimd_failures: 1, cimd_last_error: 'bad_status', client_name: 'Second Name' });
    const cimd = (await auditEvents(stack.app)).filter((e) => e.client_id === clientId && e.event.startsWith('cimd.'));
    expect(cimd.map((e) => `${e.event}${e.reason ? `:${e.reason}` : ''}`)).toEqual(['cimd.fetched', 'cimd.fetched', 'cimd.refused:bad_status']);
    // The operator sees the same in `clients list`: a CIMD client, its document's state.
    const listed: string[] = [];
    const env = { ...(await databaseEnv(stack.app.dir)), SECRET_KEY: TEST_SECRET_KEY, PUBLIC_URL: stack.app.url, UPSTREAM_ISSUER: stack.upstream.issuer, UPSTREAM_CLIENT_ID: stack.upstream.clientId, UPSTREAM_CLIENT_SECRET: stack.upstream.clientSecret };
    expect(await run(['clients', 'list', '--search', 'Second Name', '--json'], { env, out: (t) => listed.push(t), err: (t) => listed.push(t) })).toBe(0);
    expect(JSON.parse(listed[0] as string)).toEqual([
      expect.objectContaining({ client_id: clientId, client_name: 'Second Name', kind: 'cimd', document_failures: 1, document_last_error: 'bad_status', document_fetched_at: expect.stringMatching(/^\d{4}-/) }),
    ]);
    const text: string[] = [];
    expect(await run(['clients', 'list', '--search', 'Second Name'], { env, out: (t) => text.push(t), err: (t) => text.push(t) })).toBe(0);
    expect(text[0]).toMatch(/^client_id\s+client_name\s+kind\s/);
    expect(text[0]).toMatch(/Second Name\s+cimd\s/);

    served.set(path, { status: 200, name: 'Second Name', redirect: CLIENT_REDIRECT });
    expect((await authorizePage(clientId)).status).toBe(303);
    const [healed] = await rows(stack.app, 'SELECT cimd_failures, cimd_last_error FROM clients_meta WHERE client_id = ?', clientId);
    expect(healed).toMatchObject({ cimd_failures: 0, cimd_last_error: null });
  });

  it('does not fetch a client an admin disabled; it stays unknown and a later good document does not re-enable it', async () => {
    const path = '/disabled/client.json';
    const clientId = idOf(path);
    served.set(path, { status: 200, name: 'Soon Disabled', redirect: CLIENT_REDIRECT });
    await authorizeClient(stack, new Browser(), { clientId });
    expect(await stack.app.runtime.ops.disableClient(clientId, { actor: 'cli' })).toBeDefined();
    const fetchesBefore = docs.requests.filter((r) => r.url === path).length;
    const res = await authorizePage(clientId);
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(docs.requests.filter((r) => r.url === path).length).toBe(fetchesBefore);
    const [meta] = await rows(stack.app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', clientId);
    expect(meta.disabled_at).not.toBeNull();
  });

  it('/token resolves a CIMD client_id never stored, and refuses one whose document cannot be used (invalid_client)', async () => {
    const path = '/token-only/missing.json';
    const clientId = idOf(path);
    const res = await fetch(`${stack.app.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'nope', code_verifier: 'x'.repeat(43), client_id: clientId, redirect_uri: CLIENT_REDIRECT }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    expect(docs.requests.filter((r) => r.url === path)).toHaveLength(1);
    const refused = (await auditEvents(stack.app)).filter((e) => e.client_id === clientId);
    expect(refused.map((e) => `${e.event}:${e.reason}`)).toEqual(['cimd.refused:bad_status']);
    expect(await stack.app.runtime.stores.models.find('Client', clientId)).toBeUndefined();
  });
});
