/**
 * No 5xx for bad input (issue 9 item 6, DESIGN §9 "Hostile input"): no request, however
 * malformed, yields a 5xx; every refusal is a 4xx page (browser pages) or JSON (API endpoints),
 * mapped in one place (src/errors/oauth-error.ts `refusalOf`), without stack traces or library
 * messages — and nothing is written: no client, consent, code, token, session or upstream
 * transaction, U and R are not contacted, and the audit log gets at most refusal rows.
 * Requests are sent raw (node:net), so paths and headers reach the server exactly as written.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rows, type TestApp } from '../helpers/app.js';
import { rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { authorizeClient, buildAuthorization, CLIENT_REDIRECT, drive, isConsentPage, redeem, startStack, type Stack } from '../helpers/stack.js';
import { Browser, csrfOf, signIn } from '../helpers/admin.js';
import { parseForm, type Page } from '../helpers/browser.js';

let stack: Stack;
let app: TestApp;
let port: number;
/** cookie headers and CSRF tokens of signed-in browsers */
let adminCookie: string;
let adminCsrf: string;
let accountCookie: string;
let accountCsrf: string;
/** a consent page still open in its browser (its interaction is live) */
let pending: { browser: Browser; page: Page; uid: string; cookie: string; csrf: string };
/** the consent page of an authorization that has finished (code issued) */
let finished: { browser: Browser; page: Page };
let accessToken: string;
let clientId: string;

const cookieOf = (browser: Browser, path: string) => browser.cookiesFor(new URL(`${app.url}${path}`), true, false);

beforeAll(async () => {
  stack = await startStack({
    env: { ADMIN_SUBJECTS: 'root', RATE_LIMIT_AUTHORIZE: '100000/1m', RATE_LIMIT_TOKEN: '100000/1m', RATE_LIMIT_REGISTER: '100000/1m', GATEWAY_MAX_BODY: '1kb' },
  });
  app = stack.app;
  port = Number(new URL(app.url).port);

  const admin = new Browser('admin');
  adminCsrf = csrfOf(await signIn(stack, admin, 'admin', 'root'));
  adminCookie = cookieOf(admin, '/admin');

  const user = new Browser('user');
  const done = await authorizeClient(stack, user, { login: 'alice' });
  clientId = done.clientId;
  accessToken = done.tokens.body.access_token as string;
  finished = { browser: user, page: done.result.consentPage as Page };
  accountCookie = cookieOf(user, '/account');
  accountCsrf = csrfOf(await user.navigate(`${app.url}/account`));

  const other = new Browser('pending');
  const page = await other.navigate(buildAuthorization(app, { clientId }).url);
  if (!isConsentPage(page)) throw new Error('expected a consent page');
  const uid = /\/interaction\/([^/?#]+)/.exec(page.url)?.[1] as string;
  pending = { browser: other, page, uid, cookie: cookieOf(other, `/interaction/${uid}`), csrf: parseForm(page.html)?.fields.csrf as string };
});
afterAll(() => stack.close());

// ── what must not happen ─────────────────────────────────────────────────────────────────────

/** Everything a refused request must leave as it was. */
async function snapshot() {
  await app.runtime.audit.flush();
  const models = Object.fromEntries((await rows(app, 'SELECT model, count(*) AS n FROM oidc_models GROUP BY model') as { model: string; n: number }[]).map((r) => [r.model, r.n]));
  const count = async (table: string) => ((await rows(app, `SELECT count(*) AS n FROM ${table}`))[0] as { n: number }).n;
  return {
    models,
    consents: await count('consents'),
    upstreamTransactions: await count('upstream_transactions'),
    upstreamTokens: await count('upstream_tokens'),
    browserSessions: await count('browser_sessions'),
    adminSessions: await count('admin_sessions'),
    clientsMeta: await count('clients_meta'),
    upstreamAuthorizations: stack.upstream.authorizations.length,
    upstreamTokenRequests: stack.upstream.tokenRequests.length,
    mcpReceived: stack.mcp.received.length,
    auditSeq: ((await rows(app, 'SELECT coalesce(max(seq), 0) AS n FROM audit_log'))[0] as { n: number }).n,
    errorLogLines: app.logLines.filter((l) => /"level":(50|60)/.test(l)).length,
  };
}

/** Rows appended to the audit log since `seq`: only refusals (outcome deny) are allowed. */
async function auditSince(seq: number) {
  await app.runtime.audit.flush();
  return await rows(app, 'SELECT event, outcome, reason FROM audit_log WHERE seq > ? ORDER BY seq', seq) as { event: string; outcome: string; reason: string }[];
}

async function expectNothingWritten(before: Awaited<ReturnType<typeof snapshot>>) {
  const after = await snapshot();
  expect({ ...after, auditSeq: 0 }).toEqual({ ...before, auditSeq: 0 });
  for (const row of await auditSince(before.auditSeq)) expect(row, JSON.stringify(row)).toMatchObject({ outcome: 'deny' });
}

/** No stack trace, no library or internal message in a response body. */
const LEAKS = /\n\s+at |node_modules|\/work\/|[A-Z][A-Za-z]*Error\b|Error: |oops|Failed to decode|incorrect header|unsupported charset "|stream encoding|SqliteError|SQLITE_/;

function expectRefusal(res: RawResponse, kind: 'page' | 'api', label: string) {
  expect(res.status, `${label}: ${res.status} ${res.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `${label}: ${res.status} ${res.body.slice(0, 300)}`).toBeLessThan(500);
  expect(res.headers['content-type'], label).toMatch(kind === 'page' ? /^text\/html; charset=utf-8$/ : /^application\/json; charset=utf-8$/);
  expect(res.body, label).not.toMatch(LEAKS);
  expect(res.headers.location, label).toBeUndefined();
}

// ── request builders ─────────────────────────────────────────────────────────────────────────

const ACCEPT = { page: 'text/html,application/xhtml+xml', api: 'application/json' } as const;

interface Req {
  method?: string;
  path: string;
  kind: 'page' | 'api';
  headers?: Record<string, string>;
  body?: string | Buffer;
}

function build({ method = 'GET', path, kind, headers = {}, body }: Req): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', `Accept: ${ACCEPT[kind]}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body);
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'transfer-encoding')) lines.push(`Content-Length: ${payload.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

const send = (req: Req) => rawRequest(port, build(req));
const FORM = 'application/x-www-form-urlencoded';
const fields = (n: number, extra = '') => `${extra}${Array.from({ length: n }, (_, i) => `f${i}=1`).join('&')}`;
/** bytes that are not UTF-8, and a gzip header over garbage */
const INVALID_UTF8 = Buffer.from([0x61, 0x3d, 0xff, 0xfe, 0xc3, 0x28]);

/**
 * Malformed bodies for a POST endpoint, with the content type it otherwise accepts. `csrf` (a
 * valid form token) goes into the bodies the parser itself must refuse, so those reach the parser
 * of a guarded route; the others carry none and are refused by the route.
 */
function badBodies(path: string, kind: 'page' | 'api', type: string, headers: Record<string, string> = {}, csrf = ''): [string, Req][] {
  const post = (body: string | Buffer, h: Record<string, string>): Req => ({ method: 'POST', path, kind, headers: { ...headers, ...h }, body });
  return [
    ['too many fields', post(fields(60, csrf), { 'Content-Type': FORM })],
    ['a body over the limit', post(`${csrf}x=${'a'.repeat(70_000)}`, { 'Content-Type': type })],
    ['invalid percent-encoding in the body', post('a=%&b=%ZZ&c=%E0%A4%A&csrf=%', { 'Content-Type': FORM })],
    ['invalid UTF-8 in the body', post(INVALID_UTF8, { 'Content-Type': FORM })],
    ['repeated fields', post('csrf=a&csrf=b&action=approve&action=deny&grant_type=a&grant_type=b&token=a&token=b', { 'Content-Type': FORM })],
    ['malformed JSON', post('{"redirect_uris": [', { 'Content-Type': 'application/json' })],
    ['a JSON array', post('[1,2]', { 'Content-Type': 'application/json' })],
    ['text/plain', post('hello', { 'Content-Type': 'text/plain' })],
    ['multipart', post('--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n', { 'Content-Type': 'multipart/form-data; boundary=x' })],
    ['no content type', post('a=1', {})],
    ['an unsupported charset', post(`${csrf}a=1`, { 'Content-Type': `${type}; charset=utf-7` })],
    ['gzip that is not gzip', post('not gzip at all', { 'Content-Type': type, 'Content-Encoding': 'gzip' })],
    ['an unknown content encoding', post('{}', { 'Content-Type': type, 'Content-Encoding': 'x-unknown' })],
    ['a chunked body without a length', { method: 'POST', path, kind, headers: { ...headers, 'Content-Type': FORM, 'Transfer-Encoding': 'chunked' }, body: `${(70_000).toString(16)}\r\n${'a'.repeat(70_000)}\r\n0\r\n\r\n` }],
  ];
}

/** Methods an endpoint does not answer. */
function wrongMethods(path: string, kind: 'page' | 'api', methods: string[], headers: Record<string, string> = {}): [string, Req][] {
  return methods.map((method) => [`${method}`, { method, path, kind, headers }]);
}

/** Junk in the path and the query of a GET endpoint. */
function badUrls(path: string, kind: 'page' | 'api', headers: Record<string, string> = {}): [string, Req][] {
  return [
    ['an undecodable path segment', { path: `${path}/%ZZ`, kind, headers }],
    ['a truncated escape in the path', { path: `${path}%E0%A4%A`, kind, headers }],
    ['an encoded traversal', { path: `${path}/..%2f..%2fpackage.json`, kind, headers }],
  ];
}

function badQueries(path: string, kind: 'page' | 'api', headers: Record<string, string> = {}): [string, Req][] {
  return [
    ['invalid percent-encoding in the query', { path: `${path}?state=%&client_id=%ZZ&x=%E0%A4%A`, kind, headers }],
    ['invalid UTF-8 in the query', { path: `${path}?state=%FF%FE%C3%28&client_id=%C0%AF`, kind, headers }],
    ['repeated parameters', { path: `${path}?state=a&state=b&client_id=a&client_id=b&code=a&code=b&redirect_uri=a&redirect_uri=b`, kind, headers }],
    ['bracketed and prototype names', { path: `${path}?a[b]=1&__proto__[x]=1&constructor[prototype]=1`, kind, headers }],
  ];
}

/** Requests Node's HTTP parser refuses before any handler: answered as JSON too. */
function malformedHttp(path: string): [string, Buffer][] {
  return [
    ['headers over 16 KiB', Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)],
    ['a URL over 16 KiB', Buffer.from(`GET ${path}?q=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ['a control character in a header', Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\nConnection: close\r\n\r\n`)],
    ['a header without a colon', Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nno colon here\r\nConnection: close\r\n\r\n`)],
    ['two Content-Length headers', Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab`)],
    ['a broken chunked body', Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`)],
    ['an unknown HTTP version', Buffer.from(`GET ${path} HTTP/7.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
  ];
}

// ── the table: every endpoint ────────────────────────────────────────────────────────────────

function table(): [string, Req][] {
  const admin = { Cookie: adminCookie };
  const account = { Cookie: accountCookie };
  const interaction = { Cookie: pending.cookie, 'Sec-Fetch-Site': 'same-origin' };
  const decision = `/interaction/${pending.uid}/decision`;
  const cases: [string, Req][] = [];
  const add = (endpoint: string, list: [string, Req][]) => {
    for (const [label, req] of list) cases.push([`${endpoint} › ${label}`, req]);
  };

  // Discovery, JWKS (the provider's documents)
  for (const doc of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration', '/.well-known/oauth-protected-resource/mcp', '/jwks']) {
    add(doc, [...wrongMethods(doc, 'api', ['POST', 'PUT', 'DELETE', 'PATCH']), ...badUrls(doc, 'api'), ['OPTIONS without a CORS preflight', { method: 'OPTIONS', path: doc, kind: 'api' }]]);
    if (doc !== '/.well-known/oauth-protected-resource/mcp') add(doc, badBodies(doc, 'api', 'application/json'));
  }

  // Registration
  add('/register', [...badBodies('/register', 'api', 'application/json'), ...wrongMethods('/register', 'api', ['GET', 'PUT', 'DELETE'])]);
  add('/register', [['a deeply nested body', { method: 'POST', path: '/register', kind: 'api', headers: { 'Content-Type': 'application/json' }, body: `${'['.repeat(5000)}${']'.repeat(5000)}` }]]);

  // Authorization endpoint and its resume URL
  add('/authorize', [...badQueries('/authorize', 'page'), ...badUrls('/authorize', 'page'), ...wrongMethods('/authorize', 'page', ['POST', 'PUT', 'DELETE'])]);
  add('/authorize/:uid', [...badQueries('/authorize/unknown-uid', 'page'), ['an undecodable uid', { path: '/authorize/%ZZ', kind: 'page' }]]);

  // Consent page and decision
  add('/interaction/:uid', [
    ['an unknown uid', { path: '/interaction/unknown-uid', kind: 'page', headers: interaction }],
    ['a live uid without its cookie', { path: `/interaction/${pending.uid}`, kind: 'page' }],
    ['an undecodable uid', { path: '/interaction/%ZZ', kind: 'page', headers: interaction }],
    ['a uid with a truncated escape', { path: `/interaction/${pending.uid}%E0%A4%A`, kind: 'page', headers: interaction }],
    ...badQueries('/interaction/unknown-uid', 'page', interaction),
    ...wrongMethods(`/interaction/${pending.uid}`, 'page', ['POST', 'PUT', 'DELETE'], interaction),
  ]);
  add('/interaction/:uid/decision', [
    ...badBodies(decision, 'page', FORM, interaction, `csrf=${encodeURIComponent(pending.csrf)}&`),
    ['repeated action with a valid CSRF token', { method: 'POST', path: decision, kind: 'page', headers: { ...interaction, 'Content-Type': FORM }, body: `csrf=${encodeURIComponent(pending.csrf)}&action=approve&action=approve` }],
    ['an unknown uid with a valid form', { method: 'POST', path: '/interaction/unknown-uid/decision', kind: 'page', headers: { ...interaction, 'Content-Type': FORM }, body: `csrf=${encodeURIComponent(pending.csrf)}&action=approve` }],
    ...wrongMethods(decision, 'page', ['GET', 'PUT', 'DELETE'], interaction),
  ]);

  // Upstream callback
  add('/upstream/callback', [
    ...badQueries('/upstream/callback', 'page'),
    ['error and state repeated', { path: '/upstream/callback?state=a&state=b&error=x&error=y&code=1&iss=%ZZ', kind: 'page' }],
    ...wrongMethods('/upstream/callback', 'page', ['POST', 'PUT', 'DELETE']),
  ]);

  // Token and revocation
  add('/token', [
    ...badBodies('/token', 'api', FORM),
    ['repeated grant_type and code', { method: 'POST', path: '/token', kind: 'api', headers: { 'Content-Type': FORM }, body: `grant_type=authorization_code&grant_type=refresh_token&code=a&code=b&client_id=${clientId}` }],
    ['an undecodable resource', { method: 'POST', path: '/token', kind: 'api', headers: { 'Content-Type': FORM }, body: `grant_type=authorization_code&code=a&client_id=${clientId}&resource=%ZZ` }],
    ['Basic credentials with bad percent-encoding', { method: 'POST', path: '/token', kind: 'api', headers: { 'Content-Type': FORM, Authorization: `Basic ${Buffer.from('%E0%A4%A:%ZZ').toString('base64')}` }, body: 'grant_type=authorization_code&code=a' }],
    ['Basic credentials that are not base64', { method: 'POST', path: '/token', kind: 'api', headers: { 'Content-Type': FORM, Authorization: 'Basic %%%' }, body: 'grant_type=authorization_code&code=a' }],
    ...wrongMethods('/token', 'api', ['GET', 'PUT', 'DELETE']),
  ]);
  add('/revoke', [
    ...badBodies('/revoke', 'api', FORM),
    ['Basic credentials with bad percent-encoding', { method: 'POST', path: '/revoke', kind: 'api', headers: { 'Content-Type': FORM, Authorization: `Basic ${Buffer.from('%E0%A4%A:%ZZ').toString('base64')}` }, body: 'token=a' }],
    ...wrongMethods('/revoke', 'api', ['GET', 'PUT', 'DELETE']),
  ]);

  // Admin console (signed in as an admin) and connected apps (signed in as a user)
  for (const path of ['/admin/logout', '/admin/clients/x/disable', '/admin/clients/x/delete', '/admin/consents/1/revoke', '/admin/audit/verify']) {
    add(path, badBodies(path, 'page', FORM, admin, `csrf=${encodeURIComponent(adminCsrf)}&`));
  }
  add('/admin', [
    ['an undecodable client id', { path: '/admin/clients/%ZZ', kind: 'page', headers: admin }],
    ['an unknown client', { path: '/admin/clients/no-such-client', kind: 'page', headers: admin }],
    ['a consent id that is not a number', { method: 'POST', path: '/admin/consents/abc/revoke', kind: 'page', headers: { ...admin, 'Content-Type': FORM }, body: `csrf=${encodeURIComponent(adminCsrf)}` }],
    ['a huge consent id', { method: 'POST', path: '/admin/consents/99999999999999999999999/revoke', kind: 'page', headers: { ...admin, 'Content-Type': FORM }, body: `csrf=${encodeURIComponent(adminCsrf)}` }],
    ...wrongMethods('/admin', 'page', ['PUT', 'DELETE'], admin),
    ...wrongMethods('/admin/login', 'page', ['PUT', 'DELETE']),
    ...badUrls('/admin', 'page', admin),
  ]);
  for (const path of ['/account/logout', '/account/consents/1/revoke']) {
    add(path, badBodies(path, 'page', FORM, account, `csrf=${encodeURIComponent(accountCsrf)}&`));
  }
  add('/account', [
    ['a consent id that is not a number', { method: 'POST', path: '/account/consents/abc/revoke', kind: 'page', headers: { ...account, 'Content-Type': FORM }, body: `csrf=${encodeURIComponent(accountCsrf)}` }],
    ...wrongMethods('/account', 'page', ['PUT', 'DELETE'], account),
    ...wrongMethods('/account/login', 'page', ['PUT', 'DELETE']),
    ...badUrls('/account', 'page', account),
  ]);

  // Static assets
  add('/assets', [
    ['an encoded traversal', { path: '/assets/..%2f..%2fpackage.json', kind: 'page' }],
    ['an encoded traversal with backslashes', { path: '/assets/..%5c..%5cpackage.json', kind: 'page' }],
    ['an undecodable name', { path: '/assets/%ZZ.css', kind: 'page' }],
    ['a truncated escape', { path: '/assets/app.css%E0%A4%A', kind: 'page' }],
    ['a missing file', { path: '/assets/nothing.css', kind: 'page' }],
    ['a NUL byte', { path: '/assets/app.css%00.png', kind: 'page' }],
    ['a directory', { path: '/assets/', kind: 'page' }],
    ['an unsatisfiable range', { path: '/assets/app.css', kind: 'page', headers: { Range: 'bytes=999999-' } }],
    ...wrongMethods('/assets/app.css', 'page', ['POST', 'PUT', 'DELETE', 'OPTIONS']),
  ]);

  // Operations
  for (const path of ['/healthz', '/readyz', '/metrics']) add(path, [...wrongMethods(path, 'api', ['POST', 'PUT', 'DELETE']), ...badUrls(path, 'api')]);

  // The gateway, without a token
  add('/mcp', [
    ['malformed JSON', { method: 'POST', path: '/mcp', kind: 'api', headers: { 'Content-Type': 'application/json' }, body: '{"jsonrpc":' }],
    ['invalid percent-encoding in the query', { path: '/mcp?x=%&y=%ZZ', kind: 'api' }],
    ['a malformed bearer token', { method: 'POST', path: '/mcp', kind: 'api', headers: { Authorization: 'Bearer %%%\u00ff', 'Content-Type': 'application/json' }, body: '{}' }],
    ['two Authorization schemes', { method: 'POST', path: '/mcp', kind: 'api', headers: { Authorization: 'Basic a, Bearer b', 'Content-Type': 'application/json' }, body: '{}' }],
    ...wrongMethods('/mcp', 'api', ['PUT', 'PATCH', 'TRACE']),
  ]);
  return cases;
}

describe('no 5xx on bad input', () => {
  describe('the five requests that answered 500', () => {
    it('GET /interaction/<uid> after the interaction expired (reload after 10 minutes): 400, "this sign-in has expired"', async () => {
      const browser = new Browser('late');
      const page = await browser.navigate(buildAuthorization(app, { clientId }).url);
      expect(isConsentPage(page)).toBe(true);
      const before = await snapshot();
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 11 * 60_000);
        const reload = await browser.navigate(page.url);
        expect(reload.status).toBe(400);
        expect(reload.headers.get('content-type')).toBe('text/html; charset=utf-8');
        expect(reload.html).toMatch(/This sign-in has expired, start again from your application/);
        expect(reload.html).not.toMatch(LEAKS);
        expect(reload.hops.map((h) => h.status)).toEqual([400]);
      } finally {
        vi.useRealTimers();
      }
      await expectNothingWritten(before);
    });

    it('a decision POST for an interaction that already finished: 400 page, no new transaction, U not contacted', async () => {
      const before = await snapshot();
      const again = await finished.browser.submit(finished.page, { action: 'approve' });
      expect(again.status).toBe(400);
      expect(again.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(again.html).toMatch(/This sign-in has expired, start again from your application/);
      expect(again.hops).toHaveLength(1); // no redirect to U or to the client
      await expectNothingWritten(before);
    });

    it('more than 10 form fields at the decision: 413 page, nothing decided', async () => {
      const before = await snapshot();
      const res = await send({ method: 'POST', path: `/interaction/${pending.uid}/decision`, kind: 'page', headers: { Cookie: pending.cookie, 'Content-Type': FORM }, body: fields(11, `csrf=${encodeURIComponent(pending.csrf)}&action=approve&`) });
      expectRefusal(res, 'page', 'decision with 13 fields');
      expect(res.status).toBe(413);
      await expectNothingWritten(before);
      // The interaction is still usable: the same page approves normally afterwards.
      const result = await drive(pending.browser, pending.page.url, CLIENT_REDIRECT, { login: 'bob' });
      expect(result.callback.searchParams.get('code')).toBeTruthy();
      const browser = new Browser('pending-again');
      const page = await browser.navigate(buildAuthorization(app, { clientId }).url);
      const uid = /\/interaction\/([^/?#]+)/.exec(page.url)?.[1] as string;
      pending = { browser, page, uid, cookie: cookieOf(browser, `/interaction/${uid}`), csrf: parseForm(page.html)?.fields.csrf as string };
    });

    it('more than 50 form fields at /token: 413 JSON, the code is not burned', async () => {
      const user = new Browser('token-fields');
      const auth = buildAuthorization(app, { clientId });
      const result = await drive(user, auth.url, auth.redirectUri, { login: 'carol' });
      const code = result.callback.searchParams.get('code') as string;
      const before = await snapshot();
      const body = fields(51, `grant_type=authorization_code&code=${code}&code_verifier=${auth.verifier}&client_id=${clientId}&redirect_uri=${encodeURIComponent(auth.redirectUri)}&`);
      const res = await send({ method: 'POST', path: '/token', kind: 'api', headers: { 'Content-Type': FORM }, body });
      expectRefusal(res, 'api', '/token with 56 fields');
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body)).toEqual({ error: 'invalid_request', error_description: 'The request body has too many parameters.' });
      await expectNothingWritten(before);
      expect((await redeem(app, clientId, code, auth.verifier, auth.redirectUri)).status).toBe(200);
    });

    it('/assets/..%2f..%2fpackage.json: 4xx page, not the file', async () => {
      const res = await send({ path: '/assets/..%2f..%2fpackage.json', kind: 'page' });
      expectRefusal(res, 'page', 'traversal');
      expect(res.body).not.toContain('"dependencies"');
    });
  });

  it('every endpoint refuses malformed requests with a 4xx page or JSON, and writes nothing', async () => {
    const before = await snapshot();
    const cases = table();
    expect(cases.length).toBeGreaterThan(250);
    for (const [label, req] of cases) expectRefusal(await send(req), req.kind, label);
    await expectNothingWritten(before);
  }, 120_000);

  it("requests Node's HTTP parser refuses get a JSON 4xx too", async () => {
    const before = await snapshot();
    for (const path of ['/token', '/interaction/x', '/mcp', '/assets/app.css']) {
      for (const [label, bytes] of malformedHttp(path)) {
        const res = await rawRequest(port, bytes);
        expect(res.status, `${path} ${label}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${path} ${label}`).toBeLessThan(500);
        expect(res.headers['content-type'], `${path} ${label}`).toBe('application/json; charset=utf-8');
        // (the gateway may have refused the request line and headers before the body broke)
        expect(JSON.parse(res.body), `${path} ${label}`).toHaveProperty('error');
      }
    }
    await expectNothingWritten(before);
  });

  it('the gateway with a valid token: P refuses with 4xx JSON before R; what R refuses comes back as R said it, never as a P 5xx', async () => {
    const auth = { Authorization: `Bearer ${accessToken}`, Accept: 'application/json, text/event-stream' };
    const byP: [string, Req][] = [
      ['a body over GATEWAY_MAX_BODY', { method: 'POST', path: '/mcp', kind: 'api', headers: { ...auth, 'Content-Type': 'application/json' }, body: `{"x":"${'a'.repeat(2000)}"}` }],
      ['a chunked body over GATEWAY_MAX_BODY', { method: 'POST', path: '/mcp', kind: 'api', headers: { ...auth, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, body: `7d0\r\n${'a'.repeat(2000)}\r\n0\r\n\r\n` }],
      ['a token in the query', { method: 'POST', path: `/mcp?access_token=${accessToken}`, kind: 'api', headers: { 'Content-Type': 'application/json' }, body: '{}' }],
      ['a wrong method', { method: 'PUT', path: '/mcp', kind: 'api', headers: auth }],
      ['a foreign Origin', { method: 'POST', path: '/mcp', kind: 'api', headers: { ...auth, Origin: 'https://evil.example', 'Content-Type': 'application/json' }, body: '{}' }],
    ];
    const received = stack.mcp.received.length;
    for (const [label, req] of byP) {
      const res = await send(req);
      expectRefusal(res, 'api', label);
    }
    expect(stack.mcp.received.length).toBe(received);
    // R's own refusals pass through unchanged (the gateway does not rewrite R's answers).
    for (const [label, req] of [
      ['malformed JSON', { method: 'POST', path: '/mcp', kind: 'api', headers: { ...auth, 'Content-Type': 'application/json' }, body: '{"jsonrpc":' }],
      ['text/plain', { method: 'POST', path: '/mcp', kind: 'api', headers: { ...auth, 'Content-Type': 'text/plain' }, body: 'hello' }],
    ] as [string, Req][]) {
      const res = await send(req);
      expect(res.status, `${label}: ${res.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, label).toBeLessThan(500);
    }
  });
});
