/**
 * Fuzz: Dynamic Client Registration bodies (POST /register; RFC 7591, REG-02..12, DESIGN §9).
 * Metadata members with plausible, hostile or wrongly typed values, unknown members, non-objects,
 * wrong content types and codings; every invariant of test/helpers/fuzz.ts after each case. A
 * 201 may add exactly one client (its model and its clients_meta row); a refusal adds nothing.
 */
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { startStack, type Stack } from '../helpers/stack.js';
import { mcpClientMetadata } from '../helpers/app.js';
import { FuzzTarget, fuzz, fuzzTimeout } from '../helpers/fuzz.js';
import { contentType, junk, oddHeaders } from './arbitraries.js';

const FILE = 'test/fuzz/register.test.ts';
const CI_RUNS = 400;

let stack: Stack;
let target: FuzzTarget;
beforeAll(async () => {
  stack = await startStack({ env: { RATE_LIMIT_REGISTER: '1000000/1m', REDIRECT_SCHEMES: 'cursor vscode' } });
  target = new FuzzTarget(stack);
});
afterAll(() => stack.close());

const redirectUri = fc.oneof(
  fc.constantFrom(
    'http://127.0.0.1:33418/callback',
    'http://localhost/cb',
    'https://app.example/cb',
    'cursor://anysphere.cursor-retrieval/oauth/callback',
    'http://[::1]:8080/x',
    'https://app.example/cb#f',
    'vscode:/cb',
  ),
  junk,
  fc.webUrl(),
);
const anyJson = fc.jsonValue({ maxDepth: 2 });
const member = (plausible: fc.Arbitrary<unknown>) => fc.oneof({ weight: 5, arbitrary: plausible }, { weight: 2, arbitrary: junk }, { weight: 1, arbitrary: anyJson });

/** Members with plausible or hostile values. */
const MEMBERS: Record<string, fc.Arbitrary<unknown>> = {
  redirect_uris: member(fc.array(redirectUri, { maxLength: 12 })),
  client_name: member(fc.oneof(fc.constantFrom('Claude', 'Test client', 'Cl\u0430ude', 'VS Code\u200b'), fc.string({ maxLength: 120 }))),
  grant_types: member(fc.subarray(['authorization_code', 'refresh_token', 'client_credentials', 'implicit', 'password'])),
  response_types: member(fc.subarray(['code', 'token', 'id_token', 'code id_token'])),
  token_endpoint_auth_method: member(fc.constantFrom('none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth')),
  scope: member(fc.constantFrom('mcp:tools', 'openid offline_access', 'admin', 'mcp:tools mcp:tools', '')),
  application_type: member(fc.constantFrom('web', 'native', 'other')),
  client_uri: member(fc.webUrl()),
  logo_uri: member(fc.webUrl()),
  tos_uri: member(fc.webUrl()),
  policy_uri: member(fc.webUrl()),
  contacts: member(fc.array(fc.emailAddress(), { maxLength: 3 })),
  software_id: member(fc.uuid()),
  software_version: member(fc.string({ maxLength: 10 })),
  jwks_uri: member(fc.webUrl()),
  jwks: member(fc.constant({ keys: [] })),
  client_id: member(fc.string({ maxLength: 20 })),
  client_secret: member(fc.string({ maxLength: 20 })),
  post_logout_redirect_uris: member(fc.array(fc.webUrl(), { maxLength: 2 })),
};
/** One to three members set to such values. */
const metadata = fc.array(fc.oneof(...Object.entries(MEMBERS).map(([name, value]) => value.map((v) => [name, v] as const))), { minLength: 1, maxLength: 3 }).map((pairs) => Object.fromEntries(pairs));

/** A body a real client would send, with a few members replaced, removed or added. */
const mutated = fc.tuple(metadata, fc.subarray(Object.keys(mcpClientMetadata())), fc.dictionary(fc.string({ maxLength: 12 }), anyJson, { maxKeys: 2 })).map(([overrides, removed, extra]) => {
  const m: Record<string, unknown> = { ...extra, ...mcpClientMetadata(), ...overrides };
  for (const name of removed.slice(0, 2)) delete m[name];
  return JSON.stringify(m);
});

const body = fc.oneof(
  { weight: 8, arbitrary: mutated },
  { weight: 3, arbitrary: fc.constant(JSON.stringify(mcpClientMetadata())) },
  { weight: 1, arbitrary: anyJson.map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: junk },
  { weight: 1, arbitrary: mutated.map((m) => m.slice(0, -3)) },
);

describe('fuzz: registration', () => {
  it(
    'POST /register',
    async () => {
      await fuzz(FILE, 'POST /register', CI_RUNS, target, fc.tuple(body, contentType('application/json'), oddHeaders), async ([text, type, extra]) => {
        const headers: [string, string][] = [...extra];
        if (type !== undefined) headers.push(['Content-Type', type]);
        const res = await target.case({ method: 'POST', path: '/register', headers, body: text }, (r) => (r.status === 201 ? { successMayAdd: ['Client', 'clients_meta'] } : {}));
        if (res.status === 201) expect(JSON.parse(res.body)).toHaveProperty('client_id');
      });
    },
    fuzzTimeout(CI_RUNS),
  );
});
