/**
 * Fuzz: Client ID Metadata Documents (DESIGN §10, CIMD-01..04, DISC-12) served by a local
 * document server: documents whose client_id matches the URL or not, hostile names and redirect
 * URIs, secret-based auth methods, wrong types, non-JSON, oversized bodies, odd statuses and
 * content types, redirects — then /authorize with that URL as client_id.
 *
 * Whether P supports CIMD is read the way a client reads it, from the authorization server
 * metadata (DISC-12: `client_id_metadata_document_supported: true` if and only if CIMD_ENABLED):
 *   - advertised (the default; CIMD_ALLOWED_HOSTS names this loopback server and
 *     DANGEROUSLY_ALLOW_INSECURE_HTTP=true, DESIGN §10): every invariant of test/helpers/fuzz.ts,
 *     documents may be fetched, and an accepted one may only start an interaction;
 *   - not advertised (CIMD_ENABLED=false): every such request must be refused with P's 4xx page,
 *     never a redirect, creating nothing — and P must not fetch the document at all (the document
 *     server counts requests and must see none).
 * Nothing is faked: the same cases run either way, and the property checked follows the metadata.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { startStack, type Stack, CLIENT_REDIRECT } from '../helpers/stack.js';
import { pkcePair } from '../helpers/pkce.js';
import { FuzzTarget, fuzz, fuzzTimeout } from '../helpers/fuzz.js';
import { junk, pct } from './arbitraries.js';

const FILE = 'test/fuzz/cimd.test.ts';
const CI_RUNS = 200;

interface Doc {
  status: number;
  type: string;
  body: string;
  location?: string;
}

let stack: Stack;
let target: FuzzTarget;
let docServer: Server;
let docBase: string;
let supported = false;
const served = new Map<string, Doc>();
let fetched = 0;

beforeAll(async () => {
  docServer = createServer((req, res) => {
    fetched += 1;
    const doc = served.get(req.url ?? '');
    if (!doc) return res.writeHead(404).end();
    res.writeHead(doc.status, { 'Content-Type': doc.type, ...(doc.location ? { Location: doc.location } : {}) });
    res.end(doc.body);
  });
  await new Promise<void>((r) => docServer.listen(0, '127.0.0.1', r));
  docBase = `http://127.0.0.1:${(docServer.address() as AddressInfo).port}`;
  stack = await startStack({ env: { RATE_LIMIT_AUTHORIZE: '1000000/1m', CIMD_ALLOWED_HOSTS: new URL(docBase).host, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true' } });
  target = new FuzzTarget(stack);
  target.allowedRedirects.add(CLIENT_REDIRECT);
  const metadata = (await (await fetch(`${stack.app.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  supported = metadata.client_id_metadata_document_supported === true;
  console.log(
    `[fuzz] ${FILE}: CIMD ${supported ? 'advertised: documents are fetched and checked' : 'not advertised (CIMD_ENABLED=false): every CIMD client_id must be refused without a fetch'}`,
  );
});
afterAll(async () => {
  await stack.close();
  await new Promise((r) => docServer.close(r));
});

const { challenge } = pkcePair();

function documentFor(url: string): fc.Arbitrary<Doc> {
  const member = <T>(plausible: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: plausible }, { weight: 1, arbitrary: junk }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) });
  const metadata = fc.record(
    {
      client_id: member(fc.constantFrom(url, `${url}/`, url.toUpperCase(), 'https://other.example/doc.json')),
      client_name: member(fc.constantFrom('Cursor', 'Cl\u0430ude', '<b>x</b>', 'a'.repeat(300))),
      redirect_uris: member(fc.array(fc.constantFrom(CLIENT_REDIRECT, 'https://evil.example/cb', 'javascript:alert(1)', 'http://127.0.0.1:9/x'), { maxLength: 3 })),
      token_endpoint_auth_method: member(fc.constantFrom('none', 'client_secret_basic', 'private_key_jwt')),
      client_secret: member(fc.constant('s3cr3t-s3cr3t-s3cr3t')),
      grant_types: member(fc.constantFrom(['authorization_code'], ['authorization_code', 'refresh_token'], ['client_credentials'])),
      response_types: member(fc.constantFrom(['code'], ['token'])),
      client_uri: member(fc.webUrl()),
      logo_uri: member(fc.webUrl()),
    },
    { requiredKeys: [] },
  );
  return fc.record({
    status: fc.constantFrom(200, 200, 200, 200, 301, 404, 500),
    type: fc.constantFrom('application/json', 'application/json', 'text/html', 'application/json; charset=utf-16', ''),
    body: fc.oneof(
      { weight: 6, arbitrary: metadata.map((m) => JSON.stringify(m)) },
      { weight: 1, arbitrary: junk },
      { weight: 1, arbitrary: fc.integer({ min: 5_200, max: 20_000 }).map((n) => JSON.stringify({ client_id: url, client_name: 'a'.repeat(n) })) },
    ),
    location: fc.constantFrom(undefined, 'http://127.0.0.1:1/doc.json', 'https://evil.example/doc.json'),
  });
}

const docCase = fc
  .record({
    path: fc.oneof(
      fc.constantFrom('/client.json', '/a/b/metadata', '/doc'),
      fc.string({ minLength: 1, maxLength: 12 }).map((s) => `/${pct(s)}`),
    ),
    scheme: fc.constantFrom('as-served', 'as-served', 'as-served', 'https', 'userinfo', 'fragment', 'dot-segment'),
  })
  .chain(({ path, scheme }) => {
    const url = `${docBase}${path}`;
    const clientId =
      scheme === 'https'
        ? url.replace('http:', 'https:')
        : scheme === 'userinfo'
          ? url.replace('//', '//u@')
          : scheme === 'fragment'
            ? `${url}#f`
            : scheme === 'dot-segment'
              ? `${docBase}/a/../${path.slice(1)}`
              : url;
    return documentFor(url).map((doc) => ({ path, clientId, doc }));
  });

describe('fuzz: client ID metadata documents', () => {
  it(
    '/authorize with a CIMD client_id',
    async () => {
      await fuzz(FILE, '/authorize with a CIMD client_id', CI_RUNS, target, docCase, async ({ path, clientId, doc }) => {
        served.clear();
        served.set(path, doc);
        const before = fetched;
        const query = new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 'cimd' });
        const res = await target.case(
          { method: 'GET', path: `/authorize?${query}`, headers: [['Accept', 'text/html']] },
          { successMayAdd: supported ? ['Interaction', 'Client', 'clients_meta'] : [] },
        );
        if (!supported) {
          expect(res.status, `CIMD not advertised: ${clientId} must be refused`).toBeGreaterThanOrEqual(400);
          expect(res.headers.location, 'never a redirect').toBeUndefined();
          expect(fetched - before, `CIMD not advertised: P fetched ${clientId}`).toBe(0);
        }
      });
    },
    fuzzTimeout(CI_RUNS),
  );
});
