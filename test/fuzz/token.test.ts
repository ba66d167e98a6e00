/**
 * Fuzz: the token endpoint for each grant (authorization_code, refresh_token, and unknown ones)
 * and /revoke (RFC 6749 §4.1.3/§6, RFC 7636, RFC 8707, RFC 7009, RT-01..04, DESIGN §9).
 * Parameters missing, repeated, hostile or oversized, in odd encodings and content types, with
 * client authentication in the body, in Basic credentials, both or broken; real codes, refresh
 * and access tokens mixed in (so replays and rotations happen). Every invariant of
 * test/helpers/fuzz.ts after each case. A refusal never creates a token; it may remove some when
 * it is a replay (RFC 6749 §4.1.2 and RFC 9700 §4.14.2: a reused code or refresh token revokes the
 * grant); /revoke removes only what it revokes.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import fc from 'fast-check';
import { authorizeClient, Browser, buildAuthorization, CLIENT_REDIRECT, drive, startStack, type Stack } from '../helpers/stack.js';
import { FuzzTarget, fuzz, fuzzTimeout, type CaseRules } from '../helpers/fuzz.js';
import { contentType, encodePairs, FORM, junk, oddHeaders, paramList } from './arbitraries.js';

const FILE = 'test/fuzz/token.test.ts';
const CI_RUNS = 400;

let stack: Stack;
let target: FuzzTarget;
/** real values the generators mix in; the refresh token follows rotation */
const real = { clientId: '', accessToken: '', refreshToken: '', codes: [] as { code: string; verifier: string }[] };

beforeAll(async () => {
  stack = await startStack({ env: { RATE_LIMIT_TOKEN: '1000000/1m', RATE_LIMIT_AUTHORIZE: '100000/1m' } });
  target = new FuzzTarget(stack);
  const browser = new Browser('fuzz');
  const done = await authorizeClient(stack, browser, { login: 'alice' });
  real.clientId = done.clientId;
  real.accessToken = done.tokens.body.access_token;
  real.refreshToken = done.tokens.body.refresh_token;
  target.addSecret('access token', real.accessToken);
  target.addSecret('refresh token', real.refreshToken);
  target.addSecret('PKCE verifier', done.auth.verifier);
  for (let i = 0; i < 4; i++) {
    const auth = buildAuthorization(stack.app, { clientId: real.clientId });
    const code = (await drive(browser, auth.url, auth.redirectUri)).callback.searchParams.get('code') as string;
    real.codes.push({ code, verifier: auth.verifier });
    target.addSecret('authorization code', code);
    target.addSecret('PKCE verifier', auth.verifier);
  }
});
afterAll(() => stack.close());

/** Replays and revocations may remove credentials; nothing else may go. */
const MAY_REMOVE = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'Grant', 'upstream_tokens'] as const;
/** What that revocation cascade audits (src/consent/revocation.ts); U's revocation answers later, so its row may land in a later case. */
const CASCADE = ['grant.revoked', 'consent.revoked', 'token.revoked', 'upstream.token_revoked'] as const;
const tokenRules = (status: number): CaseRules => ({ successMayAdd: status === 200 ? ['AccessToken', 'RefreshToken'] : [], mayRemove: MAY_REMOVE, cascadeEvents: CASCADE });

const pick = <T>(values: (() => T)[]) => fc.constantFrom(...values).map((f) => f());

function value(name: string): fc.Arbitrary<string> {
  const plausible: Record<string, fc.Arbitrary<string>> = {
    grant_type: fc.constantFrom(
      'authorization_code',
      'refresh_token',
      'client_credentials',
      'password',
      'implicit',
      'urn:ietf:params:oauth:grant-type:device_code',
      'urn:ietf:params:oauth:grant-type:token-exchange',
      'AUTHORIZATION_CODE',
      '',
    ),
    code: pick([() => real.codes[0]?.code ?? 'x', () => real.codes.at(-1)?.code ?? 'x', () => 'unknown-code', () => `${real.codes[0]?.code ?? ''}x`]),
    code_verifier: pick([() => real.codes[0]?.verifier ?? 'x', () => 'a'.repeat(43), () => 'short', () => 'a'.repeat(200)]),
    redirect_uri: fc.constantFrom(CLIENT_REDIRECT, 'http://127.0.0.1:9999/callback', 'https://evil.example/cb'),
    client_id: pick([() => real.clientId, () => 'unknown-client', () => '']),
    refresh_token: pick([() => real.refreshToken, () => real.accessToken, () => `${real.refreshToken}x`, () => 'unknown']),
    resource: pick([() => `${stack.app.url}/mcp`, () => 'https://other.example/mcp', () => 'urn:x']),
    scope: fc.constantFrom('mcp:tools', 'openid offline_access', 'admin', ''),
    token: pick([() => real.accessToken, () => real.refreshToken, () => 'unknown-token', () => '']),
    token_type_hint: fc.constantFrom('access_token', 'refresh_token', 'id_token', 'x'),
  };
  return fc.oneof({ weight: 3, arbitrary: plausible[name] ?? junk }, { weight: 1, arbitrary: junk });
}

const TOKEN_NAMES = ['grant_type', 'code', 'code_verifier', 'redirect_uri', 'client_id', 'refresh_token', 'resource', 'scope', 'client_secret', 'client_assertion', 'client_assertion_type'];
const REVOKE_NAMES = ['token', 'token_type_hint', 'client_id', 'client_secret'];

/** A grant's well-formed request with a few parameters off, or anything at all. */
function grantRequest(): fc.Arbitrary<[string, string][]> {
  const base = fc.constantFrom(
    () =>
      [
        ['grant_type', 'authorization_code'],
        ['code', real.codes[0]?.code ?? ''],
        ['code_verifier', real.codes[0]?.verifier ?? ''],
        ['redirect_uri', CLIENT_REDIRECT],
        ['client_id', real.clientId],
      ] as [string, string][],
    () =>
      [
        ['grant_type', 'refresh_token'],
        ['refresh_token', real.refreshToken],
        ['client_id', real.clientId],
      ] as [string, string][],
    () =>
      [
        ['grant_type', 'client_credentials'],
        ['client_id', real.clientId],
        ['scope', 'mcp:tools'],
      ] as [string, string][],
  );
  return fc.oneof(
    { weight: 2, arbitrary: paramList(TOKEN_NAMES, value) },
    {
      weight: 5,
      arbitrary: fc
        .tuple(
          base,
          fc.subarray(TOKEN_NAMES, { maxLength: 2 }).chain((names) => paramList(names, value)),
          fc.nat(4),
        )
        .map(([make, extra, drop]) => {
          const pairs = make();
          return [...pairs.filter((_, i) => i !== drop), ...extra];
        }),
    },
  );
}

const basic = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      pick([() => `Basic ${Buffer.from(`${real.clientId}:`).toString('base64')}`, () => `Basic ${Buffer.from(`${real.clientId}:secret`).toString('base64')}`]),
      junk.map((j) => `Basic ${Buffer.from(j).toString('base64')}`),
      junk.map((j) => `Basic ${j}`),
      fc.constantFrom('Basic', 'Bearer x', 'Basic %%%', `Basic ${Buffer.from('%E0%A4%A:%ZZ').toString('base64')}`),
    ),
  },
);

function form(pairs: fc.Arbitrary<[string, string][]>) {
  return fc
    .record({ pairs, type: contentType(FORM), auth: basic, extra: oddHeaders, method: fc.constantFrom('POST', 'POST', 'POST', 'POST', 'POST', 'GET', 'PUT') })
    .chain((r) => encodePairs(r.pairs).map((body) => ({ ...r, body })));
}

async function post(path: string, r: { type: string | undefined; auth: string | undefined; extra: [string, string][]; method: string; body: string }) {
  const headers: [string, string][] = [['Accept', 'application/json'], ...r.extra];
  if (r.type !== undefined) headers.push(['Content-Type', r.type]);
  if (r.auth) headers.push(['Authorization', r.auth]);
  const res = await target.case({ method: r.method, path, headers, body: r.body }, (res) => tokenRules(res.status));
  if (res.status === 200 && path === '/token') {
    const body = JSON.parse(res.body) as { refresh_token?: string; access_token?: string };
    if (body.refresh_token) real.refreshToken = body.refresh_token;
    if (body.access_token) real.accessToken = body.access_token;
  }
  return res;
}

describe('fuzz: token and revocation', () => {
  it(
    'POST /token',
    async () => {
      await fuzz(FILE, 'POST /token', CI_RUNS, target, form(grantRequest()), (r) => post('/token', r).then(() => undefined));
    },
    fuzzTimeout(CI_RUNS),
  );

  it(
    'POST /revoke',
    async () => {
      await fuzz(FILE, 'POST /revoke', CI_RUNS / 2, target, form(paramList(REVOKE_NAMES, value)), (r) => post('/revoke', r).then(() => undefined));
    },
    fuzzTimeout(CI_RUNS / 2),
  );
});
