/**
 * A CIMD client_id P has not stored yet is a new client, and new clients share one budget per
 * address whichever way they come (src/flow/3-cimd.ts, RATE_LIMIT_REGISTER): found by review
 * (2026-12-06) — through /authorize an address could create four times the clients /register
 * allows. Beyond the budget: 429 before anything is fetched, nothing stored; a client already
 * stored is not counted; /register and CIMD draw on the same budget.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mcpClientMetadata, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { httpServer, type Listener } from '../helpers/cimd.js';
import { buildAuthorization } from '../helpers/stack.js';

let docs: Listener;
let app: TestApp;
beforeAll(async () => {
  docs = await httpServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ client_id: `http://127.0.0.1:${docs.port}${req.url}`, client_name: 'Doc client', redirect_uris: ['http://127.0.0.1:33418/callback'] }));
  });
  app = await startTestApp({ env: { RATE_LIMIT_REGISTER: '3/1m', CIMD_ALLOWED_HOSTS: `127.0.0.1:${docs.port}`, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true' } });
});
afterAll(async () => {
  await app?.close();
  await docs?.close();
});

const idOf = (path: string) => `http://127.0.0.1:${docs.port}${path}`;
const authorize = (clientId: string) => fetch(buildAuthorization(app, { clientId }).url, { redirect: 'manual', headers: { accept: 'text/html' } });
const register = () => fetch(`${app.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(mcpClientMetadata()) });

it('counts each first-seen CIMD client_id against the registration budget, not a stored one; beyond it 429, nothing fetched or stored', async () => {
  expect((await register()).status).toBe(201); // 1 of 3
  expect((await authorize(idOf('/a.json'))).status).toBe(303); // 2: a new client
  expect((await authorize(idOf('/a.json'))).status).toBe(303); // stored: not counted
  expect((await authorize(idOf('/b.json'))).status).toBe(303); // 3
  const fetchedBefore = docs.requests.length;
  const refused = await authorize(idOf('/c.json'));
  expect(refused.status).toBe(429);
  expect(refused.headers.get('location')).toBeNull();
  expect(docs.requests.length, 'nothing fetched').toBe(fetchedBefore);
  expect(await rows(app, 'SELECT client_id FROM clients_meta WHERE client_id = ?', idOf('/c.json'))).toEqual([]);
  expect((await register()).status, 'the same budget').toBe(429);
  expect((await authorize(idOf('/a.json'))).status, 'a stored client is not a new one').toBe(303);
});
