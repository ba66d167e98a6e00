/**
 * src/http/queued-response.ts: a pipelined response still queued behind another emits 'close'
 * once when its connection closes, and once when the server destroys it — Node 20 and 22 emit none
 * for either (Node 24 one), and the gateway's body budget, its watch on answers in flight and its
 * abort of R's request all wait for it. However many are queued, one listener on the connection.
 */
import { createServer, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { expect, it } from 'vitest';
import { closeWithConnection } from '../../src/http/queued-response.js';
import { BodyBudget } from '../../src/gateway/read-body.js';
import { listenLoopback } from '../helpers/app.js';

/** Open a connection with a server-sent stream and a POST pipelined behind it; resolves once the stream's first event is in and `queued()` holds. */
async function queueBehindStream(port: number, queued: () => boolean): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  let seen = '';
  socket.on('data', (c) => (seen += c));
  socket.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\nPOST /queued HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
  for (let i = 0; i < 500 && !(seen.includes('ping') && queued()); i++) await new Promise((done) => setTimeout(done, 5));
  return socket;
}

const turns = async () => {
  for (let i = 0; i < 10; i++) await new Promise((done) => setImmediate(done));
};

it('closes a response queued behind an open one when the connection closes, once; the open one closes as before', async () => {
  const closes: Record<string, number> = {};
  const queued: ServerResponse[] = [];
  const server = createServer((req, res) => {
    closeWithConnection(req, res);
    if (!res.socket) queued.push(res);
    res.on('close', () => (closes[req.url as string] = (closes[req.url as string] ?? 0) + 1));
    if (req.url === '/stream') return void res.writeHead(200, { 'content-type': 'text/event-stream' }).write('event: ping\n\n');
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const port = await listenLoopback(server);
  try {
    const socket = await queueBehindStream(port, () => queued.length === 1);
    expect(queued, 'the POST is answered while the stream holds the connection: queued, no socket').toHaveLength(1);
    expect(closes).toEqual({});
    socket.destroy();
    for (let i = 0; i < 500 && Object.keys(closes).length < 2; i++) await new Promise((done) => setTimeout(done, 5));
    await turns(); // a second 'close' would come within these turns of the event loop
    expect(closes).toEqual({ '/stream': 1, '/queued': 1 });
    expect(queued[0]?.destroyed).toBe(true);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

it('leaves a response alone that gets its connection: it closes once, when it is done', async () => {
  const closes: string[] = [];
  const server = createServer((req, res) => {
    closeWithConnection(req, res);
    res.on('close', () => closes.push(req.url as string));
    res.end('ok');
  });
  const port = await listenLoopback(server);
  try {
    const socket = connect({ host: '127.0.0.1', port });
    let seen = '';
    socket.on('data', (c) => (seen += c));
    socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n');
    for (let i = 0; i < 500 && (seen.match(/HTTP\/1\.1 200/g) ?? []).length < 2; i++) await new Promise((done) => setTimeout(done, 5));
    socket.destroy();
    for (let i = 0; i < 500 && closes.length < 2; i++) await new Promise((done) => setTimeout(done, 5));
    await turns();
    expect(closes).toEqual(['/a', '/b']);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

it('closes a queued response the server destroys (a revocation cut it, R failed midway), once, then nothing more when the connection closes', async () => {
  const budget = new BodyBudget(1000, 1000);
  const queued: ServerResponse[] = [];
  let closes = 0;
  const server = createServer((req, res) => {
    closeWithConnection(req, res);
    if (req.url === '/stream') return void res.writeHead(200, { 'content-type': 'text/event-stream' }).write('event: ping\n\n');
    budget.hold(res, 'alice').take(100);
    res.on('close', () => (closes += 1));
    queued.push(res);
  });
  const port = await listenLoopback(server);
  try {
    const socket = await queueBehindStream(port, () => queued.length === 1);
    expect(queued[0]?.socket).toBeFalsy();
    expect(budget.held).toBe(100);
    queued[0]?.destroy();
    await turns();
    expect(closes).toBe(1);
    expect(budget.held).toBe(0);
    socket.destroy();
    for (let i = 0; i < 500 && !socket.closed; i++) await new Promise((done) => setTimeout(done, 5));
    await turns();
    expect(closes).toBe(1);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

it('keeps one listener on the connection however many responses are queued, and closes each', async () => {
  const queued: ServerResponse[] = [];
  const closed: string[] = [];
  let base: number | undefined; // the 'close' listeners Node itself puts on the connection
  let listeners = 0;
  const server = createServer((req, res) => {
    base ??= req.socket.listenerCount('close');
    closeWithConnection(req, res);
    listeners = Math.max(listeners, req.socket.listenerCount('close'));
    res.on('close', () => closed.push(req.url as string));
    if (req.url === '/stream') return void res.writeHead(200, { 'content-type': 'text/event-stream' }).write('event: ping\n\n');
    queued.push(res);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const port = await listenLoopback(server);
  try {
    const socket = connect({ host: '127.0.0.1', port });
    socket.write(`GET /stream HTTP/1.1\r\nHost: x\r\n\r\n${Array.from({ length: 20 }, (_, i) => `POST /q${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`).join('')}`);
    for (let i = 0; i < 500 && queued.length < 20; i++) await new Promise((done) => setTimeout(done, 5));
    expect(queued).toHaveLength(20);
    expect(listeners - (base as number), 'one listener added for all twenty').toBe(1);
    socket.destroy();
    for (let i = 0; i < 500 && closed.length < 21; i++) await new Promise((done) => setTimeout(done, 5));
    await turns();
    expect(closed.sort()).toEqual(['/stream', ...Array.from({ length: 20 }, (_, i) => `/q${i}`)].sort());
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

