/**
 * What an MCP client, its user and an admin do to P over HTTP, one step at a time, for the suites
 * that drive a P process (test/crash, test/soak). Every step returns P's X-Request-Id of the
 * response that carried the decision, so the suites can find its audit row. A step that throws
 * got no answer (the process died, the connection broke): its outcome is unknown to the caller.
 */
import { randomBytes } from 'node:crypto';
import { Browser } from './browser.js';
import { drive, CLIENT_REDIRECT } from './stack.js';
import { authorizeUrl, pkcePair } from './pkce.js';
import { clickSignIn, csrfOf } from './admin.js';
import { mcpPost, INITIALIZE, type McpResponse } from './mcp-http.js';

export interface Answered<T> {
  status: number;
  requestId: string;
  body: T;
}

const requestIdOf = (headers: Headers) => headers.get('x-request-id') ?? '';

async function postForm(url: string, form: Record<string, string>): Promise<Answered<Record<string, any>>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  return { status: res.status, requestId: requestIdOf(res.headers), body: (await res.json()) as Record<string, any> };
}

/** POST /register as an MCP client does (public client, code + refresh_token). */
export async function register(p: string, name: string): Promise<Answered<{ client_id: string }>> {
  const res = await fetch(`${p}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: name, redirect_uris: [CLIENT_REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' }),
  });
  return { status: res.status, requestId: requestIdOf(res.headers), body: (await res.json()) as { client_id: string } };
}

export interface Authorized {
  code: string;
  verifier: string;
  /** the upstream callback's response: where the consent was recorded */
  callbackRequestId: string;
}

/**
 * The user authorizes `clientId` in `browser` (P's consent page, U's login as `login`); the client
 * receives a code. `progress.callbackRequestId` is set as soon as U's callback was answered (the
 * consent is recorded then), even when a later hop fails.
 */
export async function authorize(p: string, browser: Browser, clientId: string, login: string, progress: { callbackRequestId?: string } = {}): Promise<Authorized> {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(12).toString('base64url');
  const url = authorizeUrl(p, { response_type: 'code', client_id: clientId, redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state });
  browser.onHop = (hop) => {
    if (hop.url.startsWith(`${p}/upstream/callback`) && hop.status === 303) progress.callbackRequestId = hop.requestId ?? '';
  };
  const result = await drive(browser, url, CLIENT_REDIRECT, { login }).finally(() => (browser.onHop = undefined));
  const code = result.callback.searchParams.get('code');
  if (!code || result.callback.searchParams.get('state') !== state) throw new Error(`no code for the client: ${result.callback.href}`);
  return { code, verifier, callbackRequestId: progress.callbackRequestId ?? '' };
}

export const redeem = (p: string, clientId: string, code: string, verifier: string) =>
  postForm(`${p}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, client_id: clientId, redirect_uri: CLIENT_REDIRECT });

export const refresh = (p: string, clientId: string, refreshToken: string) => postForm(`${p}/token`, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });

/** One MCP request through the gateway: `initialize` when there is no session yet, else a tool call. */
export async function mcpCall(p: string, accessToken: string, sessionId: string | undefined, n: number): Promise<Answered<McpResponse> & { sessionId: string | undefined }> {
  const res = sessionId
    ? await mcpPost(`${p}/mcp`, accessToken, { jsonrpc: '2.0', id: n, method: 'tools/call', params: { name: n % 2 ? 'whoami' : 'echo', arguments: n % 2 ? {} : { message: `m${n}` } } }, { 'mcp-session-id': sessionId })
    : await mcpPost(`${p}/mcp`, accessToken, INITIALIZE);
  return { status: res.status, requestId: requestIdOf(res.headers), body: res, sessionId: sessionId ?? res.headers.get('mcp-session-id') ?? undefined };
}

/** Sign in to /admin as `login` (listed in ADMIN_SUBJECTS) in `browser`. */
export async function adminSignIn(p: string, browser: Browser, login: string): Promise<void> {
  let page = await clickSignIn(browser, await browser.navigate(`${p}/admin/login`));
  for (let i = 0; i < 5 && !page.url.startsWith(`${p}/admin`); i++) {
    page = /name="login"/.test(page.html) ? await browser.submit(page, { login }) : await browser.submit(page, { allow: 'yes' });
  }
  if (!page.url.startsWith(`${p}/admin`) || page.status !== 200) throw new Error(`admin sign-in failed: ${page.status} ${page.url}`);
}

/** The admin revokes the active consent of `clientId` on /admin/consents; undefined when there is none to revoke. */
export async function adminRevoke(p: string, browser: Browser, clientId: string): Promise<Answered<null> | undefined> {
  const list = await browser.navigate(`${p}/admin/consents?client=${encodeURIComponent(clientId)}`);
  if (list.status !== 200) throw new Error(`admin consents page: ${list.status}`);
  const id = /\/admin\/consents\/(\d+)\/revoke/.exec(list.html)?.[1];
  if (!id) return undefined;
  csrfOf(list);
  const done = await browser.submit(list, {}, { actionPart: `/consents/${id}/revoke` });
  const post = done.hops[0];
  return { status: post?.status ?? 0, requestId: post?.requestId ?? '', body: null };
}

export { Browser };
