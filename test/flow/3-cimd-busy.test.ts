/**
 * P's own overload is not the client's fault (review 2026-12-06): with every document-fetch slot
 * taken (src/cimd/resolve.ts MAX_CONCURRENT_FETCHES, here 1 through the test seam), an
 * authorization naming another CIMD client_id is answered 503 with Retry-After — not the "cannot
 * be identified" page — with no lookup, no `cimd.refused` row, nothing counted or remembered; once
 * the slot is free the same client_id is fetched.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { auditEvents, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { buildAuthorization } from '../helpers/stack.js';

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
