/**
 * CIMD_ENABLED and DCR_ENABLED (issue 12, DESIGN §4, §10): each registration mechanism is offered
 * and advertised only when enabled. With DCR off there is no registration_endpoint and /register
 * is our 404 (nothing registered); with CIMD off the metadata flag is absent and an https
 * client_id is simply unknown — P fetches nothing and audits no cimd.* event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, mcpClientMetadata, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { httpServer, type Listener } from '../helpers/cimd.js';
import { buildAuthorization } from '../helpers/stack.js';

let docs: Listener;
beforeAll(async () => {
  docs = await httpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ client_id: `http://127.0.0.1:${docs.port}${req.url}`, client_name: 'Doc client', redirect_uris: ['http://127.0.0.1:33418/callback'] }));
  });
});
afterAll(() => docs?.close());

const metadataOf = async (app: TestApp) => (await (await fetch(`${app.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;

describe('DCR_ENABLED=false: no registration endpoint', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ env: { DCR_ENABLED: 'false' } });
  });
  afterAll(() => app?.close());

  it('advertises no registration_endpoint (CIMD still advertised)', async () => {
    const metadata = await metadataOf(app);
    expect(metadata).not.toHaveProperty('registration_endpoint');
    expect(metadata.client_id_metadata_document_supported).toBe(true);
    const oidc = (await (await fetch(`${app.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(oidc).not.toHaveProperty('registration_endpoint');
  });

  it('refuses POST /register with 404 and registers nothing', async () => {
    const res = await fetch(`${app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(mcpClientMetadata()) });
    expect(res.status).toBe(404);
    expect(await rows(app, 'SELECT client_id FROM clients_meta')).toEqual([]);
    expect(await rows(app, "SELECT key FROM oidc_models WHERE model = 'Client'")).toEqual([]);
  });
});

describe('CIMD_ENABLED=false: an https client_id is unknown', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ env: { CIMD_ENABLED: 'false', CIMD_ALLOWED_HOSTS: `127.0.0.1:${docs.port}`, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true' } });
  });
  afterAll(() => app?.close());

  it('has no client_id_metadata_document_supported in its metadata', async () => {
    const metadata = await metadataOf(app);
    expect(metadata).not.toHaveProperty('client_id_metadata_document_supported');
    expect(metadata.registration_endpoint).toBe(`${app.url}/register`);
  });

  it('answers /authorize as for any unknown client: an error page, nothing fetched, no cimd event', async () => {
    const clientId = `http://127.0.0.1:${docs.port}/client.json`;
    const auth = buildAuthorization(app, { clientId });
    const res = await fetch(auth.url, { redirect: 'manual', headers: { accept: 'text/html' } });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(docs.connections).toBe(0);
    expect((await auditEvents(app)).filter((e) => e.event.startsWith('cimd.'))).toEqual([]);
    expect(await rows(app, "SELECT key FROM oidc_models WHERE model = 'Client'")).toEqual([]);
  });
});
