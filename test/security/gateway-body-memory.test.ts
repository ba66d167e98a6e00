/**
 * Memory held by request bodies (GW-01 reads every body whole before R is asked; review of
 * 2026-12-06): each body may be GATEWAY_MAX_BODY, and a client with a valid token can keep many
 * requests open, each sending most of its body and then stalling. Without a bound across them the
 * process holds as many bodies as there are connections. GATEWAY_BODY_MEMORY bounds the bytes held
 * at once: a body that would pass it is answered 503 with Retry-After — audited as
 * gateway.rejected body_memory_full, R not contacted — and what each request held is given back
 * when it is refused, when its client leaves, and when its response closes.
 */
import { connect, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditHead, auditRowsSince } from '../helpers/db-probe.js';
import { rawRequest } from '../helpers/raw-http.js';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';

const MAX_BODY = 64 * 1024;
const BODY_MEMORY = 100 * 1024;

let stack: Stack;
let token: string;
let port: number;
beforeAll(async () => {
  stack = await startStack({ env: { GATEWAY_MAX_BODY: '64kb', GATEWAY_BODY_MEMORY: '100kb' } });
  port = Number(new URL(stack.app.url).port);
  token = (await authorizeClient(stack, new Browser('bodies'), { login: 'alice' })).tokens.body.access_token;
});
afterAll(() => stack.close());

/** A JSON-RPC ping of exactly `size` bytes. */
const body = (size: number) => {
  const shell = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""}}';
  return shell.replace('"pad":""', `"pad":"${'a'.repeat(size - shell.length)}"`);
};
const head = (length: number) =>
  `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${length}\r\n\r\n`;

/** Wait (bounded) until `cond` holds. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond() && performance.now() < deadline) await new Promise((done) => setTimeout(done, 5));
}

/** Start a request whose body is `size` bytes and send all but its last `held` … its first `sent` bytes; resolves once P has read them. */
async function stalled(size: number, sent: number): Promise<{ socket: Socket; finish: () => Promise<number> }> {
  const text = body(size);
  let seen: IncomingMessage | undefined;
  const onRequest = (req: IncomingMessage) => void (req.headers['content-length'] === String(size) && (seen = req));
  stack.app.server.on('request', onRequest);
  const socket = connect({ host: '127.0.0.1', port });
  let answer = '';
  socket.on('data', (c) => (answer += c));
  const closed = new Promise<void>((done) => socket.on('close', () => done()));
  const start = head(size);
  socket.write(start + text.slice(0, sent));
  await until(() => (seen?.listenerCount('data') ?? 0) > 0 && (seen?.socket.bytesRead ?? 0) >= Buffer.byteLength(start) + sent);
  stack.app.server.off('request', onRequest);
  expect(seen?.socket.bytesRead, 'P has read what was sent').toBeGreaterThanOrEqual(Buffer.byteLength(start) + sent);
  await new Promise((done) => setImmediate(done));
  return {
    socket,
    finish: async () => {
      socket.write(text.slice(sent));
      await closed;
      return Number(answer.split(' ')[1]);
    },
  };
}

const send = (size: number) => rawRequest(port, head(size) + body(size));

describe('GATEWAY_BODY_MEMORY: the request bodies held at once', () => {
  it('refuses a body that would pass it with 503 and Retry-After, audited, R receiving nothing; the memory comes back when the held body is answered', async () => {
    const held = await stalled(60_000, 50_000); // 50 KB held
    const from = await auditHead(stack.app);
    const received = stack.mcp.received.length;
    const refused = await send(60_000); // 50 + 60 KB > 100 KB
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(JSON.parse(refused.body)).toMatchObject({ jsonrpc: '2.0', error: { message: 'The server holds too many request bodies at once; try again in a moment.' } });
    expect(stack.mcp.received.length, 'R received nothing').toBe(received);
    expect((await auditRowsSince(stack.app, from)).map((r) => [r.event, r.reason, r.outcome])).toEqual([['gateway.rejected', 'body_memory_full', 'deny']]);
    // A body that fits beside the held one goes through.
    expect((await send(20_000)).status).not.toBe(503);
    expect(stack.mcp.received.length).toBe(received + 1);
    // The held body, completed, is forwarded; once answered, what it held is free again.
    expect(await held.finish()).not.toBe(503);
    expect(stack.mcp.received.length).toBe(received + 2);
    expect((await send(60_000)).status).not.toBe(503);
    expect(stack.mcp.received.length).toBe(received + 3);
  });

  it('gives back what a body held when its client leaves, and what a body over GATEWAY_MAX_BODY took', async () => {
    const left = await stalled(60_000, 50_000);
    left.socket.destroy();
    const chunk = 'a'.repeat(MAX_BODY + 1000);
    const tooLarge = await rawRequest(
      port,
      `${head(0).replace('Content-Length: 0\r\n', 'Transfer-Encoding: chunked\r\n')}${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    expect(tooLarge.status).toBe(413);
    const received = stack.mcp.received.length;
    // Were either still held, two bodies of 50 KB could not both be: 50 + 50 + what leaked > 100 KB.
    const first = await stalled(50_000, 49_000);
    expect((await send(BODY_MEMORY - 50_000)).status).not.toBe(503);
    expect(await first.finish()).not.toBe(503);
    expect(stack.mcp.received.length).toBe(received + 2);
  });
});
