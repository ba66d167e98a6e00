/**
 * Memory held by request bodies (GW-01 reads every body whole before R is asked; review of
 * 2026-12-06): each body may be GATEWAY_MAX_BODY, and a client with a valid token can keep many
 * requests open, each sending most of its body and then stalling. Without a bound across them the
 * process holds as many bodies as there are connections. GATEWAY_BODY_MEMORY bounds the bytes held
 * at once, and one user holds at most a quarter of it (at least one GATEWAY_MAX_BODY): a body that
 * would pass either is answered 503 with Retry-After — audited as gateway.rejected
 * body_memory_full, R not contacted — and what each request held is given back when it is refused,
 * when its client leaves, and when its response closes: also a pipelined response still queued
 * behind an open stream when the connection closes, which Node 20 and 22 never closed (a second
 * review of this change: those bytes stayed held for good, src/http/queued-response.ts).
 */
import { connect, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditHead, auditRowsSince } from '../helpers/db-probe.js';
import { rawRequest } from '../helpers/raw-http.js';
import { rows } from '../helpers/app.js';
import { openSession } from '../helpers/mcp-http.js';
import { authorizeClient, Browser, startStack, type Stack } from '../helpers/stack.js';

const MAX_BODY = 64 * 1024; // GATEWAY_MAX_BODY; GATEWAY_BODY_MEMORY 128kb: one user's share is 64 KB

let stack: Stack;
let port: number;
const tokens: Record<string, string> = {};
const clients: Record<string, string> = {};
beforeAll(async () => {
  stack = await startStack({ env: { GATEWAY_MAX_BODY: '64kb', GATEWAY_BODY_MEMORY: '128kb' } });
  port = Number(new URL(stack.app.url).port);
  for (const login of ['alice', 'bob', 'carol', 'dave']) {
    const { tokens: issued, clientId } = await authorizeClient(stack, new Browser(login), { login });
    tokens[login] = issued.body.access_token;
    clients[login] = clientId;
  }
  // dave's second client: his share outlives his first one's consent
  tokens.dave2 = (await authorizeClient(stack, new Browser('dave2'), { login: 'dave' })).tokens.body.access_token;
});
afterAll(() => stack.close());

/** A JSON-RPC ping of exactly `size` bytes. */
const body = (size: number) => {
  const shell = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":""}}';
  return shell.replace('"pad":""', `"pad":"${'a'.repeat(size - shell.length)}"`);
};
const post = (user: string, length: number, connection = 'close', session = '') =>
  `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: ${connection}\r\nAuthorization: Bearer ${tokens[user]}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n${session ? `Mcp-Session-Id: ${session}\r\n` : ''}Content-Length: ${length}\r\n\r\n`;

/** Wait (bounded) until `cond` holds. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond() && performance.now() < deadline) await new Promise((done) => setTimeout(done, 5));
}

/** `user` starts a request whose body is `size` bytes and sends its first `sent`; resolves once P has read them. */
async function stalled(user: string, size: number, sent: number): Promise<{ socket: Socket; finish: () => Promise<number> }> {
  const text = body(size);
  let seen: IncomingMessage | undefined;
  const onRequest = (req: IncomingMessage) => void (req.headers.authorization === `Bearer ${tokens[user]}` && req.headers['content-length'] === String(size) && (seen = req));
  stack.app.server.on('request', onRequest);
  const socket = connect({ host: '127.0.0.1', port });
  let answer = '';
  socket.on('data', (c) => (answer += c));
  const closed = new Promise<void>((done) => socket.on('close', () => done()));
  const start = post(user, size);
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

/** `user` opens the server-sent stream of an MCP session and, on the same connection, pipelines a 60 KB POST behind it; resolves once R has answered the POST, whose answer waits behind the stream's, which never ends. */
async function pipelinedBehindStream(user: string): Promise<{ socket: Socket; streamsBefore: number; before: number }> {
  const session = await openSession(`${stack.app.url}/mcp`, tokens[user] as string);
  const streamsBefore = stack.app.runtime.gateway.openResponses.size;
  const before = received();
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const stream = `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tokens[user]}\r\nAccept: text/event-stream\r\nMcp-Session-Id: ${session}\r\n\r\n`;
  socket.write(stream + post(user, 60_000, 'keep-alive', session) + body(60_000));
  await until(() => received() === before + 1 && stack.app.runtime.gateway.openResponses.size === streamsBefore + 2);
  expect(received(), 'R answered the pipelined POST').toBe(before + 1);
  expect(stack.app.runtime.gateway.openResponses.size, 'the stream and the queued answer are open').toBe(streamsBefore + 2);
  return { socket, streamsBefore, before };
}

const send = (user: string, size: number) => rawRequest(port, post(user, size) + body(size));
const received = () => stack.mcp.received.filter((r) => r.method === 'POST').length;

describe('GATEWAY_BODY_MEMORY: the request bodies held at once', () => {
  it('refuses a body that would pass it with 503 and Retry-After, audited, R receiving nothing; the memory comes back when a held body is answered', async () => {
    const alice = await stalled('alice', 60_000, 50_000);
    const bob = await stalled('bob', 60_000, 50_000); // 100 KB held, each within its share
    const from = await auditHead(stack.app);
    const before = received();
    const refused = await send('carol', 40_000); // 100 + 40 KB > 128 KB
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(JSON.parse(refused.body)).toMatchObject({ jsonrpc: '2.0', error: { message: 'The server holds too many request bodies at once; try again in a moment.' } });
    expect(received(), 'R received nothing').toBe(before);
    expect((await auditRowsSince(stack.app, from)).map((r) => [r.event, r.reason, r.outcome])).toEqual([['gateway.rejected', 'body_memory_full', 'deny']]);
    // A body that fits beside the held ones goes through.
    expect((await send('carol', 20_000)).status).not.toBe(503);
    expect(received()).toBe(before + 1);
    // A held body, completed, is forwarded; once answered, what it held is free again.
    expect(await alice.finish()).not.toBe(503);
    expect(received()).toBe(before + 2);
    expect((await send('carol', 40_000)).status).not.toBe(503);
    expect(await bob.finish()).not.toBe(503);
    expect(received()).toBe(before + 4);
  });

  it('lets one user hold at most a quarter of it (at least one GATEWAY_MAX_BODY): beyond, that user gets 503 while another user is served', async () => {
    const alice = await stalled('alice', 60_000, 50_000);
    const before = received();
    const refused = await send('alice', 20_000); // alice: 50 + 20 KB > 64 KB
    expect(refused.status).toBe(503);
    expect(received()).toBe(before);
    expect((await send('bob', 60_000)).status, 'bob: 60 KB of his own, 110 KB in all').not.toBe(503);
    expect(await alice.finish()).not.toBe(503);
    expect(received()).toBe(before + 2);
  });

  it('gives back what a body held when its client leaves, and what a body over GATEWAY_MAX_BODY took', async () => {
    const left = await stalled('alice', 60_000, 50_000);
    left.socket.destroy();
    const chunk = 'a'.repeat(MAX_BODY + 1000);
    const tooLarge = await rawRequest(port, `${post('alice', 0).replace('Content-Length: 0\r\n', 'Transfer-Encoding: chunked\r\n')}${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`);
    expect(tooLarge.status).toBe(413);
    const before = received();
    // Were either still held, alice's share of 64 KB would refuse 60 KB more.
    await until(() => stack.app.runtime.gateway.openResponses.size === 0);
    expect((await send('alice', 60_000)).status).not.toBe(503);
    expect(received()).toBe(before + 1);
  });

  it('gives back what a pipelined body held when its connection closes while its response waits behind an open stream', async () => {
    const { socket, streamsBefore, before } = await pipelinedBehindStream('alice');
    socket.destroy();
    await until(() => stack.app.runtime.gateway.openResponses.size === streamsBefore);
    expect(stack.app.runtime.gateway.openResponses.size, 'both responses closed, neither watched any longer').toBe(streamsBefore);
    expect((await send('alice', 60_000)).status, 'the pipelined 60 KB were given back').not.toBe(503);
    expect(received()).toBe(before + 2);
  });

  it('gives back what a pipelined body held when its queued answer is cut by a revocation and the connection then closes', async () => {
    const { socket, streamsBefore, before } = await pipelinedBehindStream('dave');
    const [{ grant_id: grantId }] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clients.dave);
    await stack.app.runtime.revocation.revokeGrant(grantId as string, 'user'); // cuts both answers: the queued one is destroyed without its connection
    await until(() => stack.app.runtime.gateway.openResponses.size === streamsBefore);
    expect(stack.app.runtime.gateway.openResponses.size).toBe(streamsBefore);
    socket.destroy();
    await until(() => socket.closed);
    expect((await send('dave2', 60_000)).status, "the cut body's 60 KB were given back: dave's other client fits his share").not.toBe(503);
    expect(received()).toBe(before + 2);
  });
});
