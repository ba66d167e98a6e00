/**
 * Demo mode (decided in src/config/load.ts only: no upstream and no production signal, or
 * DEMO=true — DESIGN §4): the embedded demo IdP is the upstream, and — unless MCP_UPSTREAM_URL
 * names a real one (possible with DEMO=true only) — the demo MCP server, on an internal loopback
 * port, is R. `startDemo` starts both and says how to reach them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Router } from 'express';
import type { Config, UpstreamConfig } from '../config/load.js';
import type { Views } from '../views/render.js';
import { createDemoIdp, DEMO_SCOPES } from '../demo/idp.js';
import { createDemoMcpApp } from '../demo/mcp-server.js';
import { loadOrCreateJwks } from './jwks.js';
import type { Storage } from './core.js';

export interface Demo {
  /** the embedded IdP's routes, mounted at /demo-idp */
  idpRouter: Router;
  /** the upstream configuration that names the embedded IdP */
  upstream: UpstreamConfig;
  /** R: the demo MCP server's internal URL, or MCP_UPSTREAM_URL */
  mcpUrl: URL | undefined;
  close(): void;
}

export async function startDemo(config: Readonly<Config>, storage: Storage, views: Views): Promise<Demo> {
  const idp = createDemoIdp({ config, keys: storage.keys, models: storage.stores.models, views, jwks: await loadOrCreateJwks(storage.stores.sealed, 'demo-idp-jwks') });
  let mcpServer: Server | undefined;
  let mcpUrl = config.mcpUpstreamUrl;
  if (!mcpUrl) {
    const server = createServer(createDemoMcpApp({ path: '/mcp' }));
    mcpServer = server;
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
    mcpUrl = new URL(`http://127.0.0.1:${port}/mcp`);
  }
  return {
    idpRouter: idp.router,
    upstream: { preset: 'oidc', issuer: new URL(idp.issuer), clientId: idp.clientId, clientSecret: idp.clientSecret, scopes: DEMO_SCOPES, name: 'Demo IdP' },
    mcpUrl,
    close() {
      mcpServer?.closeAllConnections();
      mcpServer?.close();
    },
  };
}
