/**
 * Fuzz: authorization requests (GET and POST /authorize and its resume URL; AUTHZ-01..12,
 * RFC 6749 §4.1.1, RFC 7636, RFC 8707, RFC 9207, DESIGN §9). Every parameter missing, once or
 * repeated, plausible or hostile, oversized, in odd encodings; with no cookie, a junk one or a
 * signed-in browser's. A refusal creates nothing (not even an interaction) and never redirects to
 * an unregistered URI; an accepted request may only start an interaction (a consent page), never
 * issue a code: no consent is given here. Every invariant of test/helpers/fuzz.ts after each case.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import fc from 'fast-check';
import { registerClient } from '../helpers/app.js';
import { authorizeClient, Browser, CLIENT_REDIRECT, startStack, type Stack } from '../helpers/stack.js';
import { pkcePair } from '../helpers/pkce.js';
import { FuzzTarget, fuzz, fuzzTimeout } from '../helpers/fuzz.js';
import { encodePairs, FORM, junk, oddHeaders, paramList } from './arbitraries.js';

const FILE = 'test/fuzz/authorize.test.ts';
const CI_RUNS = 500;

let stack: Stack;
let target: FuzzTarget;
let clientId: string;
let signedIn: string;
beforeAll(async () => {
  stack = await startStack({ env: { RATE_LIMIT_AUTHORIZE: '1000000/1m', RATE_LIMIT_REGISTER: '1000/1m' } });
  target = new FuzzTarget(stack);
  // A browser that has approved this client before: its cookies make the provider take its other paths.
  const browser = new Browser('fuzz');
  const done = await authorizeClient(stack, browser, { login: 'alice' });
  clientId = done.clientId;
  for (const name of ['access_token', 'refresh_token'] as const) target.addSecret(name, done.tokens.body[name]);
  target.addSecret('PKCE verifier', done.auth.verifier);
  signedIn = browser.cookiesFor(new URL(`${stack.app.url}/authorize`), true, false);
  await registerClient(stack.app, { client_name: 'Other client', redirect_uris: ['https://other.example/cb'] });
  target.allowedRedirects.add(CLIENT_REDIRECT);
  target.allowedLoopbackRedirects.add('http://127.0.0.1/callback'); // a native client's loopback URI: any port (RFC 8252 §7.3)
});
afterAll(() => stack.close());

const { challenge } = pkcePair();

function value(name: string): fc.Arbitrary<string> {
  const plausible: Record<string, fc.Arbitrary<string>> = {
    response_type: fc.constantFrom('code', 'token', 'code id_token', 'none', 'CODE'),
    client_id: fc.constantFrom(() => clientId, 'unknown-client', 'https://client.example/metadata.json').map((v) => (typeof v === 'function' ? v() : v)),
    redirect_uri: fc.constantFrom(
      CLIENT_REDIRECT,
      'http://127.0.0.1:9999/callback',
      `${CLIENT_REDIRECT}/`,
      `${CLIENT_REDIRECT}?x=1`,
      'http://localhost:33418/callback',
      'https://other.example/cb',
      'http://evil.example/cb',
    ),
    code_challenge: fc.constantFrom(challenge, challenge.slice(1), 'a'.repeat(43), 'a'.repeat(129), '!!!'),
    code_challenge_method: fc.constantFrom('S256', 'plain', 's256', 'RS256'),
    state: fc.oneof(fc.string({ maxLength: 30 }), fc.constant('x'.repeat(2000))),
    scope: fc.constantFrom('mcp:tools', 'openid', 'openid offline_access mcp:tools', 'admin', 'mcp:tools mcp:tools', ''),
    resource: fc.constantFrom(() => `${stack.app.url}/mcp`, 'https://other.example/mcp', 'urn:x', '/mcp').map((v) => (typeof v === 'function' ? v() : v)),
    prompt: fc.constantFrom('none', 'login', 'consent', 'select_account', 'create', 'none login'),
    response_mode: fc.constantFrom('query', 'fragment', 'form_post', 'web_message', 'jwt'),
    max_age: fc.constantFrom('0', '-1', '1e9', 'x'),
  };
  return fc.oneof({ weight: 3, arbitrary: plausible[name] ?? junk }, { weight: 1, arbitrary: junk });
}

const NAMES = [
  'response_type',
  'client_id',
  'redirect_uri',
  'code_challenge',
  'code_challenge_method',
  'state',
  'scope',
  'resource',
  'prompt',
  'nonce',
  'response_mode',
  'request',
  'request_uri',
  'max_age',
  'login_hint',
  'claims',
  'display',
  'ui_locales',
  'id_token_hint',
  'acr_values',
];

/** Mostly a well-formed request with a few parameters off, so the fuzzer reaches past the first check. */
const pairs = fc.oneof(
  { weight: 3, arbitrary: paramList(NAMES, value) },
  {
    weight: 5,
    arbitrary: fc
      .tuple(
        fc.subarray(['scope', 'resource', 'prompt', 'nonce', 'state', 'response_mode', 'request', 'max_age', 'claims'], { maxLength: 3 }).chain((names) => paramList(names, value)),
        fc.subarray(['response_type', 'client_id', 'redirect_uri', 'code_challenge', 'code_challenge_method'], { maxLength: 1 }),
      )
      .map(([extra, dropped]) => {
        const base: [string, string][] = [
          ['response_type', 'code'],
          ['client_id', clientId],
          ['redirect_uri', CLIENT_REDIRECT],
          ['code_challenge', challenge],
          ['code_challenge_method', 'S256'],
        ];
        return [...base.filter(([n]) => !dropped.includes(n)), ...extra];
      }),
  },
);

const request = fc.record({
  pairs,
  method: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'POST', 'HEAD', 'PUT'),
  path: fc.constantFrom('/authorize', '/authorize', '/authorize', '/authorize/unknown-uid', '/authorize/%ZZ', '/authorize/'),
  cookie: fc.constantFrom('none', 'none', 'signed-in', 'junk'),
  extra: oddHeaders,
});

describe('fuzz: authorization requests', () => {
  it(
    '/authorize',
    async () => {
      await fuzz(
        FILE,
        '/authorize',
        CI_RUNS,
        target,
        request.chain((r) => encodePairs(r.pairs).map((query) => ({ ...r, query }))),
        async (r) => {
          const headers: [string, string][] = [['Accept', 'text/html'], ...r.extra];
          if (r.cookie === 'signed-in') headers.push(['Cookie', signedIn]);
          if (r.cookie === 'junk') headers.push(['Cookie', '__Host-mcp-session=x.y; _interaction=%ZZ; a']);
          const post = r.method === 'POST';
          if (post) headers.push(['Content-Type', FORM]);
          await target.case({ method: r.method, path: post ? r.path : `${r.path}?${r.query}`, headers, body: post ? r.query : undefined }, { successMayAdd: ['Interaction'] });
        },
      );
    },
    fuzzTimeout(CI_RUNS),
  );
});
