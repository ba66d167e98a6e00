/**
 * Fuzz: the admin console and the connected-apps page, signed in and not (admin guard, CSRF,
 * CONS-19, DESIGN §9): every page's query (audit filters and paging, client search, consent
 * filters, done/revoked notices, return URLs) and every form (disable, enable, delete a client;
 * revoke a consent as admin or user; verify the audit log; the sign-in buttons) with a valid,
 * junk, missing or repeated CSRF token, real, unknown and hostile ids, as the admin, as a signed-in
 * user, with a junk cookie and with none. Every invariant of test/helpers/fuzz.ts after each case.
 * A refusal creates nothing; an accepted action may remove what it revokes or deletes, and a
 * sign-in button may start an upstream login (a transaction, a 303 to U).
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import fc from 'fast-check';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';
import { csrfOf, signIn } from '../helpers/admin.js';
import { FuzzTarget, fuzz, fuzzTimeout, type CaseRules } from '../helpers/fuzz.js';
import { contentType, encodeWith, encodings, FORM, junk, oddHeaders, paramList, pct } from './arbitraries.js';

const FILE = 'test/fuzz/admin-account.test.ts';
const CI_RUNS = 400;

let stack: Stack;
let target: FuzzTarget;
const who = { admin: { cookie: '', csrf: '' }, user: { cookie: '', csrf: '' }, clientId: '', consentId: '' };

beforeAll(async () => {
  stack = await startStack({ env: { ADMIN_SUBJECTS: 'root', RATE_LIMIT_REJECTED: '1000000/1m', RATE_LIMIT_AUTHORIZE: '1000000/1m' } });
  target = new FuzzTarget(stack);
  const admin = new Browser('admin');
  who.admin.csrf = csrfOf(await signIn(stack, admin, 'admin', 'root'));
  who.admin.cookie = admin.cookiesFor(new URL(`${stack.app.url}/admin`), true, false);
  const user = new Browser('user');
  const done = await authorizeClient(stack, user, { login: 'alice' });
  target.addSecret('access token', done.tokens.body.access_token);
  target.addSecret('refresh token', done.tokens.body.refresh_token);
  who.clientId = done.clientId;
  const account = await user.navigate(`${stack.app.url}/account`);
  who.user.csrf = csrfOf(account);
  who.user.cookie = user.cookiesFor(new URL(`${stack.app.url}/account`), true, false);
  who.consentId = /\/account\/consents\/(\d+)\/revoke/.exec(account.html)?.[1] as string;
  if (!who.consentId) throw new Error('no consent on /account');
});
afterAll(() => stack.close());

const id = (kind: 'client' | 'consent') =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(kind === 'client' ? '<client>' : '<consent>') },
    { weight: 2, arbitrary: fc.constantFrom('unknown', '0', '-1', '99999999999999999999999', '1e3', '%ZZ', '..', '%2e%2e%2fadmin') },
    { weight: 1, arbitrary: junk.map(pct) },
  );

/** Every page and form, with the ids it takes. */
const route = fc.oneof(
  fc.constantFrom(
    'GET /admin',
    'GET /admin/audit',
    'GET /admin/audit/export',
    'GET /admin/clients',
    'GET /admin/consents',
    'GET /account',
    'GET /admin/login',
    'GET /account/login',
    'POST /admin/audit/verify',
    'POST /admin/login',
    'POST /account/login',
    'POST /admin/logout',
    'POST /account/logout',
  ),
  id('client').map((i) => `GET /admin/clients/${i}`),
  fc.tuple(id('client'), fc.constantFrom('disable', 'enable', 'delete')).map(([i, action]) => `POST /admin/clients/${i}/${action}`),
  id('consent').map((i) => `POST /admin/consents/${i}/revoke`),
  id('consent').map((i) => `POST /account/consents/${i}/revoke`),
);

const QUERY_NAMES = ['from', 'to', 'event', 'outcome', 'subject', 'client', 'request', 'before', 'after', 'format', 'q', 'status', 'page', 'all', 'revoked', 'done', 'return'];
const FORM_NAMES = ['csrf', 'confirm', 'back'];

function value(name: string): fc.Arbitrary<string> {
  const plausible: Record<string, fc.Arbitrary<string>> = {
    csrf: fc.constantFrom('<csrf>', '<csrf>', '<csrf>', '<other csrf>'),
    confirm: fc.constantFrom('yes', 'no'),
    back: fc.constantFrom('/admin/consents', '/admin/clients', '//evil.example', 'https://evil.example/admin/', '/admin/../account'),
    from: fc.constantFrom('2026-01-01T00:00:00Z', '2026-13-45', 'yesterday', '', '+275760-09-13T00:00:00Z', '0000-01-01T00:00:00Z'),
    to: fc.constantFrom('2999-01-01', '1970-01-01T00:00:00Z', 'x', '-271821-04-20T00:00:00Z', '9999-12-31T23:59:59.999Z'),
    event: fc.constantFrom('consent.approved', 'token.issued', 'nope', ''),
    outcome: fc.constantFrom('allow', 'deny', 'error', 'info', 'x'),
    before: fc.constantFrom('1', '0', '-5', '1e308', 'NaN', '9007199254740993'),
    after: fc.constantFrom('1', '0', '-5', '1e308', 'NaN'),
    format: fc.constantFrom('csv', 'ndjson', 'xml'),
    status: fc.constantFrom('active', 'disabled', 'x'),
    page: fc.constantFrom('0', '1', '-1', '1e9', 'x'),
    all: fc.constantFrom('1', '0'),
    revoked: fc.constantFrom('<consent>', '1', 'x'),
    done: fc.constantFrom('disabled', 'enabled', 'deleted', '<script>'),
    return: fc.constantFrom('/admin/audit', '//evil.example', 'https://evil.example', '/account', 'javascript:alert(1)'),
  };
  return fc.oneof({ weight: 3, arbitrary: plausible[name] ?? junk }, { weight: 1, arbitrary: junk });
}

const request = fc.record({
  route,
  as: fc.constantFrom('admin', 'admin', 'admin', 'user', 'user', 'nobody', 'junk'),
  query: fc.subarray(QUERY_NAMES, { maxLength: 4 }).chain((names) => paramList(names, value)),
  form: paramList(FORM_NAMES, value),
  hows: encodings,
  type: contentType(FORM),
  extra: oddHeaders,
});

/** What an accepted action may remove: a deleted client, a revoked consent's grant and tokens. */
const REMOVED = ['Client', 'clients_meta', 'Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode', 'upstream_tokens', 'admin_sessions', 'browser_sessions', 'mcp_sessions'] as const;

describe('fuzz: admin console and connected apps', () => {
  it(
    'admin and account pages and forms',
    async () => {
      await fuzz(FILE, 'admin and account pages and forms', CI_RUNS, target, request, async (r) => {
        const [method, rawPath] = r.route.split(' ') as [string, string];
        // Signing out would end the session the next cases need: only refused sign-outs are sent.
        const signsOut = rawPath.endsWith('/logout') && r.form.some(([k, v]) => k === 'csrf' && v === '<csrf>');
        const path = rawPath.replace('<client>', who.clientId).replace('<consent>', who.consentId);
        const session = r.as === 'admin' ? who.admin : r.as === 'user' ? who.user : undefined;
        const fill = (v: string) =>
          v === '<csrf>' ? (signsOut ? 'x' : (session?.csrf ?? 'x')) : v === '<other csrf>' ? (r.as === 'admin' ? who.user.csrf : who.admin.csrf) : v === '<consent>' ? who.consentId : v;
        const query = encodeWith(
          r.query.map(([k, v]) => [k, fill(v)] as [string, string]),
          r.hows,
        );
        const headers: [string, string][] = [['Accept', 'text/html'], ['Sec-Fetch-Site', 'same-origin'], ...r.extra];
        if (session) headers.push(['Cookie', session.cookie]);
        if (r.as === 'junk') headers.push(['Cookie', '__Host-mcp-admin=x.y; __Host-mcp-session=%ZZ; __Host-mcp-csrf=']);
        let body: string | undefined;
        if (method === 'POST') {
          body = encodeWith(
            r.form.map(([k, v]) => [k, fill(v)] as [string, string]),
            r.hows,
          );
          if (r.type !== undefined) headers.push(['Content-Type', r.type]);
        }
        await target.case({ method, path: query ? `${path}?${query}` : path, headers, body }, (res): CaseRules =>
          res.status < 400 ? { successMayAdd: ['upstream_transactions'], mayRemove: REMOVED } : {},
        );
      });
    },
    fuzzTimeout(CI_RUNS),
  );
});
