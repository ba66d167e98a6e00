/**
 * A small round-robin HTTP load balancer for the multi-replica tests, on 127.0.0.1: each request
 * goes to the next live backend; request and response bodies are streamed (server-sent streams
 * pass through); the Host header is kept (the replicas share one PUBLIC_URL, the balancer's).
 * A backend that refuses the connection is marked dead and the request goes to the next one (the
 * request was never sent, so retrying it is safe); a backend whose connection fails after the
 * request was sent is marked dead too, and that request is answered 502 (it may have been
 * processed: a POST is never replayed, as nginx's default `proxy_next_upstream` does not).
 * Every answered request is logged with the backend that served it and its X-Request-Id; every
 * response carries `x-balancer-backend` (the backend's index), sent as soon as the backend's
 * headers arrive — a backend dying mid-body cuts the body (the client's read fails), as with nginx.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface BalancedRequest {
  /** order of arrival at the balancer */
  n: number;
  backend: number;
  method: string;
  path: string;
  status: number;
  /** the replica's X-Request-Id (undefined on a 502 from the balancer) */
  requestId: string | undefined;
  startedAt: number;
}

export interface Balancer {
  url: string;
  log: BalancedRequest[];
  /** backends marked dead (a connection refused or broken) */
  dead: Set<number>;
  close(): Promise<void>;
}

export async function startBalancer(backendPorts: () => number[]): Promise<Balancer> {
  const log: BalancedRequest[] = [];
  const dead = new Set<number>();
  const open = new Set<Socket>();
  let next = 0;
  let arrivals = 0;

  const pick = (tried: Set<number>): number | undefined => {
    const ports = backendPorts();
    for (let i = 0; i < ports.length; i++) {
      const candidate = next++ % ports.length;
      if (!dead.has(candidate) && !tried.has(candidate)) return candidate;
    }
    return undefined;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, n: number, startedAt: number, tried: Set<number>) => {
    const backend = pick(tried);
    if (backend === undefined) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end('no live backend');
      return;
    }
    tried.add(backend);
    const port = backendPorts()[backend] as number;
    let connected = false;
    // A new connection per request (agent: false): a killed replica is seen at connect time.
    // X-Forwarded-For: the client's address appended, as nginx's $proxy_add_x_forwarded_for does.
    const forwardedFor = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', ');
    const headers = { ...req.headers, 'x-forwarded-for': forwardedFor };
    const upstream = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.url, headers, agent: false });
    upstream.on('socket', (socket) => {
      socket.once('connect', () => {
        connected = true;
        req.pipe(upstream); // only now: a refused connection leaves the body unread, for the next backend
      });
    });
    upstream.on('response', (answer) => {
      log.push({ n, backend, method: req.method ?? '', path: req.url ?? '', status: answer.statusCode ?? 0, requestId: answer.headers['x-request-id'] as string | undefined, startedAt });
      res.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'x-balancer-backend': String(backend) });
      // Sent now, not with the first body chunk: a backend that dies after its headers leaves the
      // client a cut body from a known backend, not a connection closed before any answer.
      res.flushHeaders();
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => {
      dead.add(backend);
      if (!connected) return forward(req, res, n, startedAt, tried);
      if (res.headersSent) return res.destroy();
      log.push({ n, backend, method: req.method ?? '', path: req.url ?? '', status: 502, requestId: undefined, startedAt });
      res.writeHead(502, { 'content-type': 'text/plain', 'x-balancer-backend': String(backend) }).end('backend failed');
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy(); // the client went away (an SSE stream closed)
    });
  };

  const server: Server = createServer((req, res) => forward(req, res, arrivals++, Date.now(), new Set()));
  server.on('connection', (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    dead,
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
