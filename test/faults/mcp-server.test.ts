/**
 * Failing dependencies (issue 13 §3): the MCP server R behind the gateway — down, slower than
 * GATEWAY_TIMEOUT (1 s here), resetting the connection in the middle of an SSE response, sending
 * an endless stream or a huge body — and a client that reads slowly or hangs up. For each:
 *   - the client gets the documented answer within a bound: 502 JSON-RPC "The MCP server is not
 *     reachable" (R down), 504 "did not answer in time" at GATEWAY_TIMEOUT (R slow); a response R
 *     breaks midway is aborted, never ended as if complete (the chunked body lacks its last chunk);
 *   - nothing is half-written: no MCP session binding appears, the audit row names the failure;
 *   - backpressure holds: while the client does not read, R is paused (P does not buffer R's
 *     body), and a client that hangs up ends the request to R;
 *   - no file descriptor, socket, timer or connection is left behind, and the next request works
 *     as soon as R does.
 */
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { auditHead, auditRowsSince, rowCounts } from '../helpers/db-probe.js';
import { mcpPost, openSession } from '../helpers/mcp-http.js';
import { Browser, drive, redeem } from '../helpers/stack.js';
import { baseline, expectNoLeaks, GATEWAY_TIMEOUT_MS, startFaultStack, timed, toCallback, type FaultStack } from './fault-stack.js';

let stack: FaultStack;
let token: string;
let session: string;
let mcp: string;

beforeAll(async () => {
  stack = await startFaultStack();
  const clientId = (await registerClient(stack.app)).client_id;
  const browser = new Browser('mcp');
  const { callback, auth } = await toCallback(stack, browser, clientId);
  const code = (await drive(browser, callback, auth.redirectUri)).callback.searchParams.get('code') as string;
  token = (await redeem(stack.app, clientId, code, auth.verifier)).body.access_token;
  mcp = `${stack.app.url}/mcp`;
  session = await openSession(mcp, token);
  await listTools(); // pools warm: the baseline every case compares with
});
afterAll(() => stack.close());
afterEach(() => stack.r.setFault(undefined));

const listTools = () => mcpPost(mcp, token, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': session });
const sessions = async () => (await rowCounts(stack.app)).mcp_sessions;

/** A raw request to /mcp on its own connection, for reading slowly or hanging up. */
function rawMcp(method: 'GET' | 'POST', body = '') {
  const socket = connect({ host: '127.0.0.1', port: Number(new URL(stack.app.url).port) });
  const received: Buffer[] = [];
  let bytes = 0;
  socket.on('data', (c: Buffer) => {
    received.push(c);
    bytes += c.length;
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {});
  socket.write(
    `${method} /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nMcp-Session-Id: ${session}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  return { socket, closed, bytes: () => bytes, text: () => Buffer.concat(received).toString('latin1') };
}

/** Poll `condition` every 10 ms for at most `ms`. */
async function waitFor(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // After a pause of this process, its timer may run before the I/O that arrived meanwhile: one
  // turn through the event loop's poll phase before the verdict.
  if (!condition()) await new Promise((r) => setImmediate(r));
  return condition();
}

describe('R fails', () => {
  it('R down: 502 JSON-RPC "not reachable" at once, audited, no session bound, nothing leaked; works when R is back', async () => {
    const before = await baseline(stack);
    const bound = await sessions();
    const from = await auditHead(stack.app);
    await stack.r.setFault({ kind: 'down' });
    const { value: res, ms } = await timed(listTools);
    expect(res.status).toBe(502);
    expect(JSON.parse(res.text)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'The MCP server is not reachable' } });
    expect(ms).toBeLessThan(1000);
    expect((await auditRowsSince(stack.app, from)).map((r) => `${r.event}:${r.reason}`)).toContain('gateway.upstream_failed:upstream_unreachable');
    expect(await sessions()).toBe(bound);
    await stack.r.setFault(undefined);
    await expectNoLeaks(stack, before, 'R down');
    expect((await listTools()).status).toBe(200);
  });

  it("R slower than GATEWAY_TIMEOUT: 504 JSON-RPC at the timeout, R's request ended, nothing leaked; works when R answers again", async () => {
    const before = await baseline(stack);
    const from = await auditHead(stack.app);
    await stack.r.setFault({ kind: 'hang' });
    const { value: res, ms } = await timed(listTools);
    expect(res.status).toBe(504);
    expect(JSON.parse(res.text).error.message).toBe('The MCP server did not answer in time');
    expect(ms).toBeGreaterThanOrEqual(GATEWAY_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(GATEWAY_TIMEOUT_MS + 1500);
    expect((await auditRowsSince(stack.app, from)).map((r) => `${r.event}:${r.reason}`)).toContain('gateway.upstream_failed:upstream_timeout');
    await stack.r.setFault(undefined);
    await expectNoLeaks(stack, before, 'R slow');
    expect((await listTools()).status).toBe(200);
  });

  it("R resets the connection in the middle of an SSE response: the client's response is aborted (no final chunk), nothing leaked; works again", async () => {
    const before = await baseline(stack);
    await stack.r.setFault({ kind: 'reset' });
    const client = rawMcp('POST', JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'countdown', arguments: { from: 3 } } }));
    const { ms } = await timed(() => client.closed);
    const text = client.text();
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('notifications/progress'); // what R sent before the reset reached the client
    expect(text.endsWith('0\r\n\r\n'), 'a broken response is not ended as if complete').toBe(false);
    expect(ms).toBeLessThan(1000);
    await stack.r.setFault(undefined);
    await expectNoLeaks(stack, before, 'R reset');
    expect((await listTools()).status).toBe(200);
  });

  it('R sends an endless stream and the client hangs up: the request to R ends at once, nothing leaked', async () => {
    const before = await baseline(stack);
    await stack.r.setFault({ kind: 'endless', intervalMs: 5 });
    const abandoned = stack.r.abandoned;
    const client = rawMcp('GET');
    expect(await waitFor(() => client.bytes() > 1000, 2000), 'events flow').toBe(true);
    client.socket.destroy();
    expect(await waitFor(() => stack.r.abandoned > abandoned, 1000), 'R saw the request end within 1 s').toBe(true);
    await stack.r.setFault(undefined);
    await expectNoLeaks(stack, before, 'endless stream');
  });

  it('R sends a huge body to a client that does not read: R is paused (P buffers little), then the client reads it all, intact; nothing leaked', async () => {
    const size = 64 * 1024 * 1024;
    const before = await baseline(stack);
    await stack.r.setFault({ kind: 'huge', bytes: size });
    const sent = stack.r.sentBytes;
    const client = rawMcp('POST', JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }));
    client.socket.pause();
    await new Promise((r) => setTimeout(r, 400)); // long enough for an unbounded buffer to take most of 64 MiB
    const whilePaused = stack.r.sentBytes - sent;
    expect(whilePaused, `R wrote ${whilePaused} bytes to a client that read nothing`).toBeLessThan(16 * 1024 * 1024);
    client.socket.resume();
    await client.closed;
    const text = client.text();
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(body.length).toBe(size);
    await stack.r.setFault(undefined);
    await expectNoLeaks(stack, before, 'huge body');
  });

  it('the client hangs up while R is still reading a huge body out: the request to R ends, nothing leaked', async () => {
    const before = await baseline(stack);
    await stack.r.setFault({ kind: 'huge', bytes: 256 * 1024 * 1024 });
    const abandoned = stack.r.abandoned;
    const client = rawMcp('POST', JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list' }));
    expect(await waitFor(() => client.bytes() > 1024 * 1024, 3000)).toBe(true);
    client.socket.destroy();
    expect(await waitFor(() => stack.r.abandoned > abandoned, 1000), 'R saw the request end within 1 s').toBe(true);
    await stack.r.setFault(undefined);
    await expectNoLeaks(stack, before, 'client hung up');
  });

  it('the client hangs up while R has not answered yet: the request to R ends at once, nothing leaked', async () => {
    const before = await baseline(stack);
    await stack.r.setFault({ kind: 'hang' });
    const requests = stack.r.requests.length;
    const abandoned = stack.r.abandoned;
    const client = rawMcp('POST', JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }));
    expect(await waitFor(() => stack.r.requests.length > requests, 1000), 'the request reached R').toBe(true);
    client.socket.destroy();
    expect(await waitFor(() => stack.r.abandoned > abandoned, 500), 'P ended its request to R within 0.5 s (well before GATEWAY_TIMEOUT)').toBe(true);
    await stack.r.setFault(undefined);
    await expectNoLeaks(stack, before, 'hang-up before headers');
    expect((await listTools()).status).toBe(200);
  });
});
