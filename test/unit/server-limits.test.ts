/**
 * answerClientError (src/http/server-limits.ts) on a plain Node server with P's request deadlines:
 * only the request being received is answered 408; a stalled request pipelined behind one whose
 * answer is still owed drops the connection instead — a 408 written there would be read as the
 * earlier request's answer (review of REQUEST_TIMEOUT, 2026-12-07).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { answerClientError, requestDeadlines } from '../../src/http/server-limits.js';
import { listenLoopback } from '../helpers/app.js';

const servers: ReturnType<typeof createServer>[] = [];
afterEach(() =>
  servers.splice(0).forEach((s) => {
    s.closeAllConnections();
    s.close();
  }),
);

/** A server whose GET /slow answers only when told; every other request is read and answered 200. */
async function start(): Promise<{ port: number; slow: Promise<ServerResponse>; requests: string[] }> {
  let found: (res: ServerResponse) => void = () => undefined;
  const slow = new Promise<ServerResponse>((resolve) => (found = resolve));
  const requests: string[] = [];
  const server = createServer(requestDeadlines(1000), (req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.url === '/slow') return found(res);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.on('clientError', answerClientError);
  servers.push(server);
  return { port: await listenLoopback(server), slow, requests };
}

/** Send `text` on a new connection; resolves with everything received once the server closes it (bounded). */
function exchange(port: number, text: string): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.on('data', (c) => (answer += c));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, 5000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    socket.write(text);
  });
}

describe('answerClientError', () => {
  it('answers the stalled request itself 408, then closes', async () => {
    const { port } = await start();
    const { answer, closed } = await exchange(port, 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial');
    expect(closed).toBe(true);
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*"error":"invalid_request"/);
  });

  it('drops the connection, writing nothing, when the stalled request is pipelined behind one whose answer is still owed', async () => {
    const { port, slow, requests } = await start();
    const exchanged = exchange(port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial');
    const owed = await slow;
    const owedClosed = new Promise<void>((done) => owed.on('close', () => done()));
    const { answer, closed } = await exchanged;
    expect(requests).toEqual(['GET /slow', 'POST /x']);
    expect(closed).toBe(true);
    expect(answer, 'no 408 where /slow is answered').toBe('');
    await owedClosed;
    expect(owed.writableEnded, '/slow was never answered').toBe(false);
  });
});
