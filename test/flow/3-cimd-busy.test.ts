/**
 * P's own overload is not the client's fault (review 2026-12-06): with every document-fetch slot
 * taken (src/cimd/resolve.ts MAX_CONCURRENT_FETCHES, here 1 through the test seam), an
 * authorization naming another CIMD client_id is answered 503 with Retry-After — not the "cannot
 * be identified" page — with no lookup, no `cimd.refused` row, nothing counted or remembered; once
 * the slot is free the same client_id is fetched. The same for one client address's share of the
 * slots (MAX_FETCHES_PER_REQUESTER, here 1): another address still gets its fetch. And for the
 * connections to one address (MAX_FETCHES_PER_DESTINATION, here 1): a second name of a wildcard
 * record on a silent server is 503 after its lookup, with no connection, while a name on another
 * address is fetched.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { auditEvents, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { buildAuthorization } from '../helpers/stack.js';
import { fakeResolver, recordingRoute, silentServer } from '../helpers/cimd.js';

let app: TestApp;
let release!: () => void;
const gate = new Promise<void>((resolve) => (release = resolve));
const lookups: string[] = [];
beforeAll(async () => {
  // A resolver that answers only when the test says so (then: no such name).
  const lookup = async (hostname: string) => {
    lookups.push(hostname);
    await gate;
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  };
  app = await startTestApp({ cimdFetch: { lookup, maxConcurrentFetches: 1 } });
});
afterAll(async () => {
  release();
  await app?.close();
});

const page = (clientId: string) => fetch(buildAuthorization(app, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html' } });

it('answers 503 with Retry-After while every fetch slot is taken, records nothing, and fetches the same client_id once a slot is free', async () => {
  const first = page('https://one.example/client.json');
  for (let i = 0; i < 200 && !lookups.includes('one.example'); i++) await new Promise((r) => setTimeout(r, 10));
  expect(lookups).toEqual(['one.example']);

  const busy = await page('https://two.example/client.json');
  expect(busy.status).toBe(503);
  expect(busy.headers.get('retry-after')).toBe('1');
  expect(busy.headers.get('location')).toBeNull();
  expect(lookups, 'no lookup for the refused one').toEqual(['one.example']);
  expect((await auditEvents(app)).filter((e) => e.event.startsWith('cimd.'))).toEqual([]);
  expect(await rows(app, 'SELECT client_id FROM clients_meta')).toEqual([]);

  release();
  expect((await first).status).toBe(400); // its lookup failed: no such name
  expect((await page('https://two.example/client.json')).status).toBe(400);
  expect(lookups, 'busy was not remembered: fetched now').toEqual(['one.example', 'two.example']);
  const refused = (await auditEvents(app)).filter((e) => e.event === 'cimd.refused').map((e) => `${e.client_id}:${e.reason}`);
  expect(refused).toEqual(['https://one.example/client.json:dns_failed', 'https://two.example/client.json:dns_failed']);
});

it("answers 503 to an address whose share of the fetch slots is taken, while another address's client_id is fetched", async () => {
  let open!: () => void;
  const held = new Promise<void>((resolve) => (open = resolve));
  const asked: string[] = [];
  const lookup = async (hostname: string) => {
    asked.push(hostname);
    await held;
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  };
  const proxied = await startTestApp({ env: { TRUST_PROXY: 'loopback' }, cimdFetch: { lookup, maxFetchesPerRequester: 1 } });
  try {
    const from = (ip: string, clientId: string) => fetch(buildAuthorization(proxied, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html', 'x-forwarded-for': ip } });
    const first = from('203.0.113.7', 'https://a1.example/client.json');
    for (let i = 0; i < 200 && !asked.includes('a1.example'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(asked).toEqual(['a1.example']);

    const busy = await from('203.0.113.7', 'https://a2.example/client.json');
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(busy.headers.get('location')).toBeNull();
    expect(asked, 'no lookup for the refused one').toEqual(['a1.example']);

    const elsewhere = from('198.51.100.9', 'https://b1.example/client.json');
    for (let i = 0; i < 200 && !asked.includes('b1.example'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(asked, 'another address is fetched while the first one waits').toEqual(['a1.example', 'b1.example']);

    open();
    expect((await first).status).toBe(400);
    expect((await elsewhere).status).toBe(400);
    // both lookups were released at once: their rows come in either order
    expect((await auditEvents(proxied)).filter((e) => e.event === 'cimd.refused').map((e) => e.client_id).sort()).toEqual(['https://a1.example/client.json', 'https://b1.example/client.json']);
    expect(await rows(proxied, 'SELECT client_id FROM clients_meta')).toEqual([]);
  } finally {
    open();
    await proxied.close();
  }
});

it('answers 503 to a second name whose address already has its share of connections, and fetches a name on another address', async () => {
  const silent = await silentServer();
  const WILD = '93.184.216.34';
  const OTHER = '93.184.216.35';
  const lookup = fakeResolver((hostname) => (hostname.endsWith('.wild.example') ? [WILD] : hostname === 'other.example' ? [OTHER] : []));
  // Anything but WILD goes to port 1 of 127.0.0.1, where nothing listens: refused at once.
  const route = recordingRoute({ [WILD]: silent.port }, 1);
  const gated = await startTestApp({ cimdFetch: { lookup, testOnlyRoute: route, maxFetchesPerDestination: 1 } });
  try {
    const page = (clientId: string) => fetch(buildAuthorization(gated, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html' } });
    const first = page('https://a.wild.example/client.json');
    for (let i = 0; i < 200 && silent.connections === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(silent.connections).toBe(1);

    const busy = await page('https://b.wild.example/client.json');
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(busy.headers.get('location')).toBeNull();
    expect(lookup.lookups, 'its lookup was made').toEqual(['a.wild.example', 'b.wild.example']);
    expect(route.seen.map((t) => t.address), 'nothing dialled for it').toEqual([WILD]);
    expect(silent.connections).toBe(1);
    expect((await auditEvents(gated)).filter((e) => e.event.startsWith('cimd.'))).toEqual([]);
    expect(await rows(gated, 'SELECT client_id FROM clients_meta')).toEqual([]);

    // Another address is dialled meanwhile (nothing listens there: refused, audited as such).
    expect((await page('https://other.example/client.json')).status).toBe(400);
    expect(route.seen.map((t) => t.address)).toEqual([WILD, OTHER]);

    await silent.close();
    expect((await first).status).toBe(400);
    expect((await page('https://b.wild.example/client.json')).status, 'busy was not remembered: dialled now').toBe(400);
    expect(route.seen.map((t) => t.address)).toEqual([WILD, OTHER, WILD]);
    const refused = (await auditEvents(gated)).filter((e) => e.event === 'cimd.refused').map((e) => e.client_id);
    expect(refused.sort()).toEqual(['https://a.wild.example/client.json', 'https://b.wild.example/client.json', 'https://other.example/client.json']);
  } finally {
    await silent.close();
    await gated.close();
  }
});
