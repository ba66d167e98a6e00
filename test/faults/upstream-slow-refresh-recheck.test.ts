/**
 * Fault: U's token endpoint slower than CHECK_FRESH_MS while a request waits for its refresh
 * (found by review, 2026-12-06). By the time U answers, the request's token check is stale, so
 * GW-01 checks the token again before R is asked — the token only, once: the refreshed upstream
 * token in hand is kept. A first version re-ran the whole request instead, so with U's tokens
 * always due (a lifetime under the refresh skew) each pass refreshed again and the request never
 * reached R.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { INITIALIZE } from '../helpers/mcp-http.js';
import { CHECK_FRESH_MS } from '../../src/gateway/exchange.js';

let stack: Stack;
let token: string;
beforeAll(async () => {
  stack = await startStack({ upstreamAccessTokenTtl: 30 }); // under the refresh skew: every request refreshes U's token
  token = (await authorizeClient(stack, new Browser('alice'), { login: 'alice' })).tokens.body.access_token;
});
afterAll(async () => {
  stack.upstream.setTokenEndpointFault(undefined);
  await stack?.close();
});

describe('a refresh at U slower than the freshness bound', () => {
  it('is answered, with one refresh at U and one request at R', async () => {
    stack.upstream.setTokenEndpointFault({ delayMs: CHECK_FRESH_MS + 200 });
    const refreshes = () => stack.upstream.tokenRequests.filter((r) => r.grant_type === 'refresh_token').length;
    const refreshesBefore = refreshes();
    const receivedBefore = stack.mcp.received.length;
    const res = await fetch(`${stack.app.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify(INITIALIZE),
      signal: AbortSignal.timeout(10_000),
    });
    await res.text();
    expect(res.status).toBe(200);
    expect(refreshes() - refreshesBefore).toBe(1);
    expect(stack.mcp.received.length - receivedBefore).toBe(1);
  });

  it('leaves nothing registered among the open answers when the client leaves while the refresh is under way (review 2026-12-07)', async () => {
    stack.upstream.setTokenEndpointFault({ delayMs: 400 });
    const { openResponses } = stack.app.runtime.gateway;
    const add = vi.spyOn(openResponses, 'add');
    try {
      const left = fetch(`${stack.app.url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify(INITIALIZE),
        signal: AbortSignal.timeout(150), // gone before U answers
      });
      await expect(left).rejects.toThrow();
      for (let i = 0; i < 500 && add.mock.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(add, 'the request went its way once U answered').toHaveBeenCalledTimes(1);
      expect(openResponses.size, 'its closed response is not watched (it was, for ever: its close had passed)').toBe(0);
    } finally {
      add.mockRestore();
    }
  });
});
