/**
 * AT-21 DNS rebinding / browser-driven calls (GW-10): a browser Origin other than the allowed
 * ones gets 403 even with a valid token; R sees nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { mcpPost, INITIALIZE } from '../helpers/mcp-http.js';

let stack: Stack;
let token: string;
beforeAll(async () => {
  stack = await startStack({ env: { ALLOWED_ORIGINS: 'https://inspector.example' } });
  token = (await authorizeClient(stack, new Browser())).tokens.body.access_token;
});
afterAll(() => stack.close());

describe('AT-21 Origin check', () => {
  it('refuses a foreign Origin with 403 before anything else', async () => {
    const before = stack.mcp.received.length;
    for (const origin of ['https://evil.example', 'http://127.0.0.1:1', 'null']) {
      const res = await mcpPost(`${stack.app.url}/mcp`, token, INITIALIZE, { origin });
      expect(res.status, origin).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
    expect(stack.mcp.received.length).toBe(before);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'origin_not_allowed')).toHaveLength(3);
  });

  it('lets an allowed browser origin through, with CORS, and requests without Origin', async () => {
    const preflight = await fetch(`${stack.app.url}/mcp`, { method: 'OPTIONS', headers: { origin: 'https://inspector.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://inspector.example');
    const allowed = await mcpPost(`${stack.app.url}/mcp`, token, INITIALIZE, { origin: 'https://inspector.example' });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-expose-headers')).toContain('mcp-session-id');
    expect((await mcpPost(`${stack.app.url}/mcp`, token, INITIALIZE)).status).toBe(200);
  });
});
