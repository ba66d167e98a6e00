/**
 * AT-20 (issue 12, DESIGN §10): the CIMD fetcher cannot be turned against P's own network through
 * /authorize. Each refusal below is the SSRF guard of src/cimd/fetch.ts reached through the real
 * endpoint: P's error page (400, no Location header — nothing the client_id or a document said is
 * followed), a `cimd.refused` audit row with the reason, NO connection accepted by the loopback
 * listener every refused target would have reached (the test route sends any target that got
 * past the policy there, and the literal-loopback cases name it directly), and no client stored.
 * test/security/cimd-ssrf.test.ts covers the fetcher itself, case by case.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { fakeResolver, httpServer, httpsServer, recordingRoute, selfSignedCertificate, type Listener } from '../helpers/cimd.js';
import { buildAuthorization } from '../helpers/stack.js';

/** A public address the test route maps to the https document server (documentation-free, global unicast). */
const PUBLIC_ADDRESS = '93.184.215.14';

let internal: Listener; // what an attacker wants P to reach: counts every accepted connection
let redirectTarget: Listener;
let redirecting: Listener; // a "public" https host answering 302 to the internal listener
let app: TestApp;
let route: ReturnType<typeof recordingRoute>;

beforeAll(async () => {
  const document = (url: string | undefined) => JSON.stringify({ client_id: url, client_name: 'x', redirect_uris: ['http://127.0.0.1:33418/callback'] });
  internal = await httpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(document(req.url));
  });
  redirectTarget = await httpServer((_req, res) => res.end('{}'));
  const tls = selfSignedCertificate(['redirecting.example']);
  redirecting = await httpsServer(tls, (_req, res) => {
    res.statusCode = 302;
    res.setHeader('location', `http://127.0.0.1:${redirectTarget.port}/client.json`);
    res.end();
  });
  const lookup = fakeResolver({
    'internal.example': ['10.0.0.5'],
    'mixed.example': [PUBLIC_ADDRESS, '192.168.1.10'],
    'mapped.example': ['::ffff:127.0.0.1'],
    'nat64.example': ['64:ff9b::a9fe:a9fe'], // 169.254.169.254, the cloud metadata endpoint
    'localhost.example': ['127.0.0.1'],
    'redirecting.example': [PUBLIC_ADDRESS],
  });
  route = recordingRoute({ [PUBLIC_ADDRESS]: redirecting.port }, internal.port);
  app = await startTestApp({ env: { CIMD_DENIED_HOSTS: 'denied.example' }, cimdFetch: { lookup, testOnlyRoute: route, ca: tls.cert } });
});

afterAll(async () => {
  await app?.close();
  await Promise.all([internal?.close(), redirectTarget?.close(), redirecting?.close()]);
});

async function refusedAtAuthorize(clientId: string, reason: string) {
  const before = internal.connections;
  const auth = buildAuthorization(app, { clientId });
  const res = await fetch(auth.url, { redirect: 'manual', headers: { accept: 'text/html' } });
  expect(res.status).toBe(400);
  expect(res.headers.get('location')).toBeNull();
  const html = await res.text();
  expect(html).toContain('This application cannot be identified');
  expect(html).not.toContain('33418');
  expect(internal.connections - before).toBe(0);
  const events = (await auditEvents(app)).filter((e) => e.event === 'cimd.refused' && e.client_id === clientId);
  expect(events.at(-1)?.reason).toBe(reason);
  expect(await rows(app, "SELECT key FROM oidc_models WHERE model = 'Client'")).toEqual([]);
  expect(await rows(app, 'SELECT client_id FROM clients_meta')).toEqual([]);
}

describe('CIMD SSRF guard at /authorize (AT-20)', () => {
  it('refuses a loopback IP literal without connecting', () => refusedAtAuthorize(`https://127.0.0.1:${internal.port}/client.json`, 'not_public_address'));
  it('refuses a name that resolves to loopback without connecting', () => refusedAtAuthorize(`https://localhost.example:${internal.port}/client.json`, 'not_public_address'));
  it('refuses a name that resolves to a private address', () => refusedAtAuthorize('https://internal.example/client.json', 'not_public_address'));
  it('refuses a name with one private address among public ones', () => refusedAtAuthorize('https://mixed.example/client.json', 'not_public_address'));
  it('refuses the IPv4-mapped form of loopback', () => refusedAtAuthorize(`https://mapped.example:${internal.port}/client.json`, 'not_public_address'));
  it('refuses the NAT64 form of the link-local metadata address', () => refusedAtAuthorize('https://nat64.example/latest/meta-data', 'not_public_address'));
  it('refuses plain http without the test allowance', () => refusedAtAuthorize(`http://127.0.0.1:${internal.port}/client.json`, 'scheme'));
  it('refuses a denied host before any lookup', () => refusedAtAuthorize('https://denied.example/client.json', 'host_denied'));
  it('no target that got past the policy was routed to the internal listener', () => {
    expect(route.seen.map((t) => t.address).filter((a) => a !== PUBLIC_ADDRESS)).toEqual([]);
  });

  it('does not follow a redirect from a public host (the redirect target sees no connection)', async () => {
    await refusedAtAuthorize('https://redirecting.example/client.json', 'redirect');
    expect(redirecting.requests.map((r) => r.url)).toEqual(['/client.json']);
    expect(redirectTarget.connections).toBe(0);
  });
});
