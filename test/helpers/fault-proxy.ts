/**
 * A fault-injecting HTTP proxy on loopback, for the failing-dependency suite (test/faults/): P is
 * configured with the proxy's URL as U's issuer or as R's URL, and the proxy forwards to the
 * real fake (test/helpers/fake-upstream.ts, fake-mcp.ts) until a fault is set:
 *   down     the port is closed (connection refused) until `setFault(undefined)` reopens it
 *   hang     the request is accepted and never answered (slower than every timeout)
 *   status   an HTTP error status with a JSON error body
 *   garbage  200 with a body that is not JSON
 *   reset    the response headers and part of the body are sent, then the connection is reset
 *   endless  200 text/event-stream that never ends (an event every `intervalMs`)
 *   huge     200 with `bytes` of JSON-ish body, written as fast as the reader takes it
 *   transform  forwarded, but the JSON response body of matching requests is rewritten
 *   moved    an endpoint moved: the old path 404s, the new one works, metadata names the new one
 * A fault applies to requests whose path matches `paths` (default: all). The proxy counts open
 * sockets and requests, and records when an upstream-side request ended (for "R was told the
 * client left").
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type Fault =
  | { kind: 'down' }
  | { kind: 'hang' }
  | { kind: 'status'; status: number }
  | { kind: 'garbage' }
  | { kind: 'reset'; afterBytes?: number }
  | { kind: 'endless'; intervalMs?: number }
  | { kind: 'huge'; bytes: number }
  | { kind: 'transform'; json: (body: any, req: IncomingMessage) => any | Promise<any> }
  /** an endpoint moved: `from` answers 404 (HTML), `to` is served by `from`, and JSON bodies (metadata) name `to` */
  | { kind: 'moved'; from: string; to: string };

export interface FaultProxy {
  url: string;
  port: number;
  /** requests received (any path) */
  requests: { method: string; path: string }[];
  /** sockets currently open to the proxy */
  openSockets(): number;
  /** responses the proxy generated itself that ended because the client went away */
  abandoned: number;
  /** body bytes written by the `huge` and `endless` faults so far */
  sentBytes: number;
  setFault(fault: (Fault & { paths?: RegExp }) | undefined): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string, port = 0): Promise<FaultProxy> {
  const to = new URL(target);
  let fault: (Fault & { paths?: RegExp }) | undefined;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const requests: { method: string; path: string }[] = [];
  let server: Server;
  const proxy: FaultProxy = {
    url: '',
    port,
    requests,
    abandoned: 0,
    sentBytes: 0,
    openSockets: () => sockets.size,
    async setFault(next) {
      const wasDown = fault?.kind === 'down';
      fault = next;
      if (next?.kind === 'down' && !wasDown) await stop();
      if (wasDown && next?.kind !== 'down') await listen();
    },
    async close() {
      fault = undefined;
      await stop();
    },
  };

  function forward(req: IncomingMessage, res: ServerResponse, transform?: (body: any, req: IncomingMessage) => any | Promise<any>) {
    const upstream = httpRequest({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (!transform || !/json/.test(String(answer.headers['content-type']))) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', async () => {
        const body = JSON.stringify(await transform(JSON.parse(Buffer.concat(chunks).toString('utf8')), req));
        const headers = { ...answer.headers, 'content-length': String(Buffer.byteLength(body)) };
        delete headers['transfer-encoding'];
        res.writeHead(answer.statusCode ?? 502, headers);
        res.end(body);
      });
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }

  function handle(req: IncomingMessage, res: ServerResponse) {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
    const f = fault && (!fault.paths || fault.paths.test(req.url ?? '')) ? fault : undefined;
    req.resume();
    res.on('close', () => {
      if (!res.writableFinished) proxy.abandoned += 1;
    });
    switch (f?.kind) {
      case undefined:
      case 'down':
        return forward(req, res);
      case 'transform':
        return forward(req, res, f.json);
      case 'moved': {
        const path = (req.url ?? '').split('?')[0];
        if (path === f.from) {
          res.writeHead(404, { 'content-type': 'text/html' });
          return void res.end('<h1>Not Found</h1>');
        }
        if (path === f.to) req.url = `${f.from}${(req.url ?? '').slice(f.to.length)}`;
        return forward(req, res, (body) => JSON.parse(JSON.stringify(body).split(`${f.from}"`).join(`${f.to}"`)));
      }
      case 'hang':
        return; // never answered; the socket stays until the client gives up
      case 'status':
        res.writeHead(f.status, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ error: 'server_error', error_description: 'injected failure' }));
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end('{"access_token": <html>Bad Gateway</html>');
      case 'reset': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } })}\n\n`.padEnd(f.afterBytes ?? 64));
        const t = setTimeout(() => {
          timers.delete(t);
          res.socket?.resetAndDestroy();
        }, 20);
        timers.add(t);
        return;
      }
      case 'endless': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        let n = 0;
        const tick = () => {
          if (res.destroyed) return;
          const event = `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"n":${n++}}}\n\n`;
          proxy.sentBytes += event.length;
          res.write(event);
          const t = setTimeout(() => {
            timers.delete(t);
            tick();
          }, f.intervalMs ?? 5);
          timers.add(t);
        };
        return tick();
      }
      case 'huge': {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(f.bytes) });
        const chunk = Buffer.alloc(64 * 1024, 'a');
        let left = f.bytes;
        const pump = () => {
          while (left > 0 && !res.destroyed) {
            const piece = chunk.subarray(0, Math.min(chunk.length, left));
            left -= piece.length;
            proxy.sentBytes += piece.length;
            if (!res.write(piece)) return void res.once('drain', pump);
          }
          if (left === 0) res.end();
        };
        return pump();
      }
    }
  }

  async function listen() {
    server = createServer(handle);
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(proxy.port, '127.0.0.1', resolve));
    proxy.port = (server.address() as { port: number }).port;
    proxy.url = `http://127.0.0.1:${proxy.port}`;
  }

  async function stop() {
    for (const t of timers) clearTimeout(t);
    timers.clear();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  }

  await listen();
  return proxy;
}
