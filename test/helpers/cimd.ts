/**
 * Local stand-ins for the CIMD fetcher's network (issue 12): listeners on 127.0.0.1 that count
 * every accepted connection (the proof that a refused fetch connected nowhere), an https document
 * server with a self-signed certificate for a chosen name (made with the openssl CLI), and a
 * resolver that counts its lookups. Tests never touch real DNS or leave the machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { CheckedTarget, ResolvedAddress, Resolver } from '../../src/cimd/fetch.js';

export interface SeenRequest {
  method: string;
  url: string;
  host: string | undefined;
  accept: string | undefined;
  /** the TLS SNI the client sent (https servers only) */
  servername: string | undefined;
}

export interface Listener {
  port: number;
  /** accepted TCP connections, counted on `connection` */
  connections: number;
  requests: SeenRequest[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(server: Server, listener: Omit<Listener, 'port' | 'close'>): Promise<Listener> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    listener.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(listener, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

function recording(listener: { requests: SeenRequest[] }, handler: Handler): Handler {
  return (req, res) => {
    listener.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      host: req.headers.host,
      accept: req.headers.accept,
      servername: (req.socket as TLSSocket).servername || undefined,
    });
    handler(req, res);
  };
}

/** Plain http on 127.0.0.1. */
export function httpServer(handler: Handler): Promise<Listener> {
  const state = { connections: 0, requests: [] as SeenRequest[] };
  return listen(createHttpServer(recording(state, handler)), state);
}

/** https on 127.0.0.1 with the given certificate. */
export function httpsServer(tls: { cert: string; key: string }, handler: Handler): Promise<Listener> {
  const state = { connections: 0, requests: [] as SeenRequest[] };
  return listen(createHttpsServer({ cert: tls.cert, key: tls.key }, recording(state, handler)), state);
}

/** Accepts TCP connections and never says anything (a server that hangs before TLS or HTTP). */
export function silentServer(): Promise<Listener> {
  const state = { connections: 0, requests: [] as SeenRequest[] };
  return listen(createTcpServer(() => undefined), state);
}

/** A self-signed certificate (its own trust anchor) for `names` (DNS names), via the openssl CLI. */
export function selfSignedCertificate(names: readonly string[]): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'cimd-cert-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2',
      '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
    ], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A resolver answering from a table (or a function of the call number), counting its lookups. */
export function fakeResolver(answers: Record<string, string[]> | ((hostname: string, call: number) => string[])): Resolver & { lookups: string[] } {
  const lookups: string[] = [];
  const resolve = async (hostname: string): Promise<ResolvedAddress[]> => {
    lookups.push(hostname);
    const addresses = typeof answers === 'function' ? answers(hostname, lookups.length) : answers[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(resolve, { lookups });
}

/**
 * The test route (src/cimd/fetch.ts `testOnlyRoute`): every checked target it is handed is
 * recorded; targets whose address is in `map` go to that loopback port, anything else to
 * `fallbackPort` (the counting "internal" listener) — so a fetch that wrongly got past the policy
 * would be seen there.
 */
export function recordingRoute(map: Record<string, number>, fallbackPort?: number) {
  const seen: CheckedTarget[] = [];
  const route = (target: CheckedTarget) => {
    seen.push(target);
    const port = map[target.address] ?? fallbackPort;
    if (port === undefined) throw new Error(`no test route for ${target.address}`);
    return { address: '127.0.0.1', port };
  };
  return Object.assign(route, { seen });
}
