/**
 * Found by the /mcp fuzz surface (test/fuzz/gateway.test.ts, issue 13): a request body over
 * GATEWAY_MAX_BODY was refused with 413 but audited as `gateway.upstream_failed` (outcome
 * `error`) — the client's request, refused by P (DESIGN §9), recorded as a failure of the MCP
 * server, which puts it among upstream outages instead of the refusals an admin reviews. It is
 * now `gateway.rejected` with reason `body_too_large` (outcome `deny`), declared or streamed, and
 * the declared one still never reaches R.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditHead, auditRowsSince } from '../helpers/db-probe.js';
import { rawRequest } from '../helpers/raw-http.js';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let token: string;
let port: number;
beforeAll(async () => {
  stack = await startStack({ env: { GATEWAY_MAX_BODY: '1kb' } });
  port = Number(new URL(stack.app.url).port);
  token = (await authorizeClient(stack, new Browser('big'), { login: 'alice' })).tokens.body.access_token;
});
afterAll(() => stack.close());

const head = (extra: string) => `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n${extra}\r\n`;

describe('gateway oversized body audit', () => {
  it('a declared body over GATEWAY_MAX_BODY: 413, audited as gateway.rejected body_too_large (deny), R not contacted', async () => {
    const from = await auditHead(stack.app);
    const received = stack.mcp.received.length;
    const body = `{"x":"${'a'.repeat(2000)}"}`;
    const res = await rawRequest(port, `${head(`Content-Length: ${body.length}\r\n`)}${body}`);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ error: { message: 'Request body exceeds 1024 bytes' } });
    expect(stack.mcp.received.length).toBe(received);
    expect((await auditRowsSince(stack.app, from)).map((r) => [r.event, r.reason, r.outcome])).toEqual([['gateway.rejected', 'body_too_large', 'deny']]);
  });

  it('a chunked body over GATEWAY_MAX_BODY: 413, audited as gateway.rejected body_too_large (deny), no upstream failure, R not contacted', async () => {
    const from = await auditHead(stack.app);
    const received = stack.mcp.received.length;
    const chunk = 'a'.repeat(2000);
    const res = await rawRequest(port, `${head('Transfer-Encoding: chunked\r\n')}${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
    expect(res.status).toBe(413);
    expect(stack.mcp.received.length).toBe(received); // the body is read whole before R is asked (GW-01)
    expect((await auditRowsSince(stack.app, from)).map((r) => [r.event, r.reason, r.outcome])).toEqual([['gateway.rejected', 'body_too_large', 'deny']]);
  });
});
