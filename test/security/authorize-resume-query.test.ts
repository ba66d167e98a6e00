/**
 * Found by the /authorize fuzz surface (test/fuzz/authorize.test.ts, issue 13): the resume URL
 * `/authorize/<uid>` with a query naming a registered `client_id` and no `redirect_uri` answered
 * 500 — oidc-provider's authorization error handler read the query as an authorization request
 * and failed in its single-redirect-URI recovery (TypeError). DESIGN §9: no request, however
 * malformed, yields a 5xx. The resume URL carries no parameters; its query is now dropped
 * (src/flow/3-authorize.ts `resumePreflight`), so the same request gets P's 4xx error page,
 * without a redirect and without writing anything, and a real resume still works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { rowCounts } from '../helpers/db-probe.js';
import { rawRequest } from '../helpers/raw-http.js';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let port: number;
beforeAll(async () => {
  stack = await startStack();
  port = Number(new URL(stack.app.url).port);
});
afterAll(() => stack.close());

describe('authorize resume URL with a query', () => {
  it('GET /authorize/<uid>?client_id=<registered client>: a 4xx page, no redirect, nothing written', async () => {
    const { client_id: clientId } = await registerClient(stack.app);
    for (const query of [`client_id=${clientId}`, `client_id=${clientId}&response_type=code&scope=mcp:tools`, `client_id=${clientId}&prompt=none`]) {
      const before = await rowCounts(stack.app);
      const res = await rawRequest(port, `GET /authorize/unknown-uid?${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nConnection: close\r\n\r\n`);
      expect(res.status, `${query}: ${res.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, query).toBeLessThan(500);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers.location).toBeUndefined();
      expect(res.body).not.toMatch(/TypeError|redirect_uri'|node_modules/);
      expect(await rowCounts(stack.app)).toEqual(before);
    }
  });

  it('the resume URL still completes a real authorization', async () => {
    const { tokens } = await authorizeClient(stack, new Browser('resume'), { login: 'alice' });
    expect(tokens.status).toBe(200);
    expect(tokens.body.access_token).toBeTruthy();
  });
});
