/**
 * A CIMD client over time (issue 12, src/cimd/clients.ts): a document served with `no-store` is
 * fetched for every authorization and a changed document takes effect; a re-fetch that fails
 * stops the authorization (no stale fallback, CIMD-06/07) and is counted in clients_meta (the
 * admin console's failures); a client an admin disabled is not fetched at all and stays unknown;
 * /token and /revoke fetch nothing (a CIMD client_id never stored is unknown there, and a stored
 * one must still pass the trust policy, as its tokens must at the gateway); a disabled client outlives idle housekeeping. Loopback document server under the test allowance.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { maintenanceDeps } from '../../src/runtime/server.js';
import { runMaintenance } from '../../src/runtime/maintenance.js';
import { run } from '../../src/cli/index.js';
import { auditEvents, rows, TEST_SECRET_KEY } from '../helpers/app.js';
import { databaseEnv } from '../helpers/engine.js';
import { httpServer, type Listener } from '../helpers/cimd.js';
import { authorizeClient, Browser, buildAuthorization, CLIENT_REDIRECT, startReplica, startStack, type Stack } from '../helpers/stack.js';
import { INITIALIZE, mcpPost } from '../helpers/mcp-http.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { holding, lockWaitSeen } from '../helpers/pg.js';
import type { PgSql } from '../../src/db/pg-sql.js';

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
    const env = {
      ...(await databaseEnv(stack.app.dir)),
      SECRET_KEY: TEST_SECRET_KEY,
      PUBLIC_URL: stack.app.url,
      UPSTREAM_ISSUER: stack.upstream.issuer,
      UPSTREAM_CLIENT_ID: stack.upstream.clientId,
      UPSTREAM_CLIENT_SECRET: stack.upstream.clientSecret,
    };
    expect(await run(['clients', 'list', '--search', 'Second Name', '--json'], { env, out: (t) => listed.push(t), err: (t) => listed.push(t) })).toBe(0);
    expect(JSON.parse(listed[0] as string)).toEqual([
      expect.objectContaining({
        client_id: clientId,
        client_name: 'Second Name',
        kind: 'cimd',
        document_failures: 1,
        document_last_error: 'bad_status',
        document_fetched_at: expect.stringMatching(/^\d{4}-/),
      }),
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

    // Idle housekeeping keeps a disabled CIMD client (review 2026-12-06: it deleted the row, and the
    // next /authorize stored the URL anew, enabled): the disabling holds past CLIENT_IDLE_TTL.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 400 * 86_400_000);
      const result = await runMaintenance(maintenanceDeps(stack.app.runtime, stack.app.runtime.gateway));
      expect(result.expiredClients).not.toContain(clientId);
    } finally {
      vi.useRealTimers();
    }
    const again = await authorizePage(clientId);
    expect(again.status).toBe(400);
    expect(docs.requests.filter((r) => r.url === path).length).toBe(fetchesBefore);
    const [kept] = await rows(stack.app, 'SELECT disabled_at FROM clients_meta WHERE client_id = ?', clientId);
    expect(kept.disabled_at).toBe(meta.disabled_at);
  });

  it('/token and /revoke fetch nothing: a CIMD client_id never stored is unknown (invalid_client), and nothing is stored (review 2026-12-06: each was a stored client outside the registration budget)', async () => {
    const path = '/token-only/client.json';
    const clientId = idOf(path);
    served.set(path, { status: 200, name: 'Minted', redirect: CLIENT_REDIRECT });
    for (const [endpoint, form] of [
      ['/token', { grant_type: 'authorization_code', code: 'nope', code_verifier: 'x'.repeat(43), client_id: clientId, redirect_uri: CLIENT_REDIRECT }],
      ['/revoke', { token: 'abc', client_id: clientId }],
    ] as const) {
      const res = await fetch(`${stack.app.url}${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
      expect(res.status, endpoint).toBe(401);
      expect(((await res.json()) as { error: string }).error, endpoint).toBe('invalid_client');
    }
    expect(
      docs.requests.filter((r) => r.url === path),
      'nothing fetched',
    ).toHaveLength(0);
    expect((await auditEvents(stack.app)).filter((e) => e.client_id === clientId && e.event.startsWith('cimd.'))).toEqual([]);
    expect(await stack.app.runtime.stores.models.find('Client', clientId)).toBeUndefined();
    expect(await rows(stack.app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', clientId)).toEqual([]);
  });

  it('CIMD turned off: a CIMD client stored while it was on is unknown at /authorize, /token and /revoke, and its tokens are refused at the gateway (review 2026-12-06: it kept working)', async () => {
    const path = '/switched-off/client.json';
    const clientId = idOf(path);
    served.set(path, { status: 200, name: 'Switched Off', redirect: CLIENT_REDIRECT });
    const { tokens } = await authorizeClient(stack, new Browser(), { clientId });
    const off = await startReplica(stack, { CIMD_ENABLED: 'false' });
    try {
      const fetchesBefore = docs.requests.length;
      const mcpBefore = stack.mcp.received.length;
      const call = await mcpPost(`${off.url}/mcp`, tokens.body.access_token as string, INITIALIZE);
      expect(call.status).toBe(401);
      expect(stack.mcp.received.length, 'R not contacted').toBe(mcpBefore);
      off.runtime.refusals.tally.flush(); // a refusal of an unusable token is tallied (DESIGN §9)
      await off.runtime.audit.flush();
      expect((await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected_aggregate').map((e) => e.reason)).toEqual(['cimd_refused']);
      const page = await fetch(buildAuthorization(off, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html' } });
      expect(page.status).toBe(400);
      expect(page.headers.get('location')).toBeNull();
      for (const [endpoint, form] of [
        ['/token', { grant_type: 'authorization_code', code: 'nope', code_verifier: 'x'.repeat(43), client_id: clientId, redirect_uri: CLIENT_REDIRECT }],
        ['/revoke', { token: 'abc', client_id: clientId }],
      ] as const) {
        const res = await fetch(`${off.url}${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
        expect(res.status, endpoint).toBe(401);
        expect(((await res.json()) as { error: string }).error, endpoint).toBe('invalid_client');
      }
      expect(docs.requests.length, 'nothing fetched').toBe(fetchesBefore);
    } finally {
      await off.close();
    }
    expect((await fetch(buildAuthorization(stack.app, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html' } })).status, 'still a client where CIMD is on').toBe(303);
    expect((await mcpPost(`${stack.app.url}/mcp`, tokens.body.access_token as string, INITIALIZE)).status, 'its token works where CIMD is on').toBe(200);
  });

  it('a CIMD client is stored with its clients_meta row or not at all; one whose row is missing counts as a CIMD client all the same (review 2026-12-06)', async () => {
    const path = '/meta-lost/client.json';
    const clientId = idOf(path);
    served.set(path, { status: 200, name: 'Meta Lost', redirect: CLIENT_REDIRECT });
    const meta = stack.app.runtime.stores.clientsMeta;
    const recordCimdFetch = meta.recordCimdFetch.bind(meta);
    meta.recordCimdFetch = async () => {
      throw Object.assign(new Error('the database is busy (test)'), { code: 'SQLITE_BUSY' });
    };
    try {
      const res = await fetch(buildAuthorization(stack.app, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html' } });
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect(res.headers.get('location')).toBeNull();
    } finally {
      meta.recordCimdFetch = recordCimdFetch;
    }
    expect(await stack.app.runtime.stores.models.find('Client', clientId), 'no Client row without its clients_meta row').toBeUndefined();

    // A row lost before that was one transaction: the client_id's URL shape still makes it a CIMD client.
    const { tokens } = await authorizeClient(stack, new Browser(), { clientId });
    await stack.app.runtime.sql.run('DELETE FROM clients_meta WHERE client_id = ?', [clientId]);
    const off = await startReplica(stack, { CIMD_ENABLED: 'false' });
    try {
      const mcpBefore = stack.mcp.received.length;
      expect((await mcpPost(`${off.url}/mcp`, tokens.body.access_token as string, INITIALIZE)).status, 'its token at the gateway').toBe(401);
      expect(stack.mcp.received.length, 'R not contacted').toBe(mcpBefore);
      const refreshed = await fetch(`${off.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token as string, client_id: clientId }),
      });
      expect(refreshed.status).toBe(401);
      expect(((await refreshed.json()) as { error: string }).error).toBe('invalid_client');
    } finally {
      await off.close();
    }
  });

  it('/token and /revoke refuse a stored client whose client_id no longer passes the trust policy (a host denied, or no longer allowed, later)', async () => {
    const path = '/later-denied/client.json';
    const clientId = idOf(path);
    served.set(path, { status: 200, name: 'Later Denied', redirect: CLIENT_REDIRECT });
    const { tokens } = await authorizeClient(stack, new Browser(), { clientId });
    const ping = (app: { url: string }) => mcpPost(`${app.url}/mcp`, tokens.body.access_token as string, INITIALIZE);
    const revoke = (app: { url: string }) =>
      fetch(`${app.url}/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: 'abc', client_id: clientId }) });
    // Another process on the same database without the allowance for this host (a changed configuration).
    const replica = await startReplica(stack, { CIMD_ENABLED: 'true' });
    try {
      const fetchesBefore = docs.requests.length;
      const refused = await revoke(replica);
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { error: string }).error).toBe('invalid_client');
      expect(docs.requests.length, 'nothing fetched').toBe(fetchesBefore);
      const rows = (await auditEvents(stack.app)).filter((e) => e.client_id === clientId && e.event === 'cimd.refused');
      expect(rows.map((e) => e.reason)).toEqual(['scheme']);
      const mcpBefore = stack.mcp.received.length;
      expect((await ping(replica)).status, 'its token at the gateway').toBe(401);
      expect(stack.mcp.received.length, 'R not contacted').toBe(mcpBefore);
    } finally {
      await replica.close();
    }
    expect((await revoke(stack.app)).status, 'accepted where the policy allows it').toBe(200);
    expect((await ping(stack.app)).status, 'its token works where the policy allows it').toBe(200);
  });

  /**
   * PostgreSQL: a re-fetched document is stored clients_meta first, as a client's removal (an
   * admin's deletion, idle housekeeping: removeClientRows) takes clients_meta first and the Client
   * row second — review 2026-12-08: the re-fetch wrote the Client row first, and the two deadlocked.
   */
  it.skipIf(TEST_ENGINE !== 'postgres')('a re-fetch while the client is being removed: no deadlock; the removal commits, the authorization stores the client anew', async () => {
    const path = '/lifecycle/removed.json';
    const clientId = idOf(path);
    served.set(path, { status: 200, name: 'Removed', redirect: CLIENT_REDIRECT });
    expect((await authorizePage(clientId)).status).toBe(303); // on to the consent page
    const sql = stack.app.runtime.sql as PgSql;
    let page!: Promise<Response>;
    const removal = await holding(sql.pool, async (holder) => {
      await holder.query('DELETE FROM clients_meta WHERE client_id = $1', [clientId]); // the removal's first step
      page = authorizePage(clientId);
      expect(await lockWaitSeen(sql.pool), 'the re-fetch waits for the clients_meta row').toBe(true);
      await holder.query("DELETE FROM oidc_models WHERE model = 'Client' AND key = $1", [clientId]);
    });
    expect(removal, 'the removal commits').toEqual({});
    expect((await page).status).toBe(303);
    expect(await rows(stack.app, "SELECT key FROM oidc_models WHERE model = 'Client' AND key = ?", clientId)).toEqual([{ key: clientId }]);
    expect(await rows(stack.app, 'SELECT client_name FROM clients_meta WHERE client_id = ?', clientId)).toEqual([{ client_name: 'Removed' }]);
  });
});
