/**
 * The MCP server behind the gateway in tests (R): the demo MCP server on loopback, recording
 * every request it receives (headers, method, path) so tests can assert what reached it — and
 * what never did.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDemoMcpApp } from '../../src/demo/mcp-server.js';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface FakeMcp {
  url: string;
  received: ReceivedRequest[];
  close(): Promise<void>;
}

export async function startFakeMcp(options: { countdownDelayMs?: number } = {}): Promise<FakeMcp> {
  const received: ReceivedRequest[] = [];
  const app = createDemoMcpApp({ onRequest: (req) => received.push({ method: req.method, url: req.originalUrl, headers: { ...req.headers } }), countdownDelayMs: options.countdownDelayMs });
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    received,
    async close() {
      await app.closeSessions();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
}
