/**
 * The demo MCP server (R) embedded in demo mode, and the MCP server the tests put behind the
 * gateway. Streamable HTTP with sessions (MCP TypeScript SDK). It shows what the gateway
 * delivers: `whoami` reports which upstream user and which upstream token (as a SHA-256 digest)
 * the request carried — never P's token, which it must never see.
 * Tools: whoami, echo, countdown (streams progress notifications). Also a resource and a prompt.
 * The token's user is read from the JWT payload without verification: this is a demo server on
 * loopback; a real MCP server validates the upstream token with its issuer.
 */
import { createHash, randomUUID } from 'node:crypto';
import express, { type Express, type Request, type Response } from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

export interface DemoMcpOptions {
  /** path of the MCP endpoint */
  path?: string;
  /** called with every request's headers (tests record what R received) */
  onRequest?: (req: Request) => void;
  /** delay between countdown notifications, ms */
  countdownDelayMs?: number;
}

/** Who the bearer token names, and its digest. */
export function describeBearer(authorization: string | undefined): { user: string; tokenSha256: string | null } {
  const token = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1];
  if (!token) return { user: 'anonymous', tokenSha256: null };
  let user = 'unknown (opaque token)';
  const parts = token.split('.');
  if (parts.length === 3) {
    try {
      const payload = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as { sub?: string; preferred_username?: string };
      if (payload.sub) user = payload.sub;
    } catch {
      // not a JWT
    }
  }
  return { user, tokenSha256: createHash('sha256').update(token).digest('hex') };
}

function buildServer(authorization: () => string | undefined, delayMs: number): McpServer {
  const server = new McpServer({ name: 'mcp-consent-proxy-demo', version: '1.0.0' });
  server.registerTool(
    'whoami',
    { description: 'Which upstream user and upstream token this request reached the MCP server with.', inputSchema: { greeting: z.string().optional() } },
    async ({ greeting }) => {
      const who = describeBearer(authorization());
      return {
        content: [{ type: 'text', text: JSON.stringify({ greeting: greeting ?? null, upstream_user: who.user, upstream_token_sha256: who.tokenSha256 }) }],
        structuredContent: { upstream_user: who.user, upstream_token_sha256: who.tokenSha256 },
      };
    },
  );
  server.registerTool('echo', { description: 'Echo a message back.', inputSchema: { message: z.string() } }, async ({ message }) => ({ content: [{ type: 'text', text: message }] }));
  server.registerTool(
    'countdown',
    { description: 'Count down, sending a progress notification for each step.', inputSchema: { from: z.number().int().min(1).max(20).default(5) } },
    async ({ from }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= from; i++) {
        if (token !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: from, message: `${from - i} left` } });
        }
        await new Promise((r) => setTimeout(r, delayMs));
      }
      return { content: [{ type: 'text', text: 'liftoff' }] };
    },
  );
  server.registerResource('about', 'demo://about', { description: 'What this demo server is', mimeType: 'text/plain' }, async (uri) => ({
    contents: [{ uri: uri.href, text: 'A demo MCP server behind MCP Consent Proxy. The whoami tool shows the upstream identity the gateway forwarded.' }],
  }));
  server.registerPrompt('greet', { description: 'Greet someone', argsSchema: { name: z.string() } }, ({ name }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `Say hello to ${name}.` } }],
  }));
  return server;
}

export function createDemoMcpApp(options: DemoMcpOptions = {}): Express & { closeSessions(): Promise<void> } {
  const path = options.path ?? '/mcp';
  const app = express();
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; auth: { value: string | undefined } }>();

  app.use(path, (req, _res, next) => {
    options.onRequest?.(req);
    next();
  });
  app.post(path, express.json({ limit: '4mb' }), async (req: Request, res: Response) => {
    const sessionId = req.headers['mcp-session-id'];
    let entry = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    if (!entry) {
      if (sessionId !== undefined || req.body?.method !== 'initialize') {
        res.status(sessionId ? 404 : 400).json({ jsonrpc: '2.0', id: null, error: { code: -32000, message: sessionId ? 'Session not found' : 'Bad Request: no session' } });
        return;
      }
      const auth = { value: req.headers.authorization };
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, { transport, auth });
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await buildServer(() => auth.value, options.countdownDelayMs ?? 50).connect(transport);
      entry = { transport, auth };
    }
    entry.auth.value = req.headers.authorization;
    await entry.transport.handleRequest(req, res, req.body);
  });
  const bySession = async (req: Request, res: Response) => {
    const sessionId = req.headers['mcp-session-id'];
    const entry = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    if (!entry) {
      res.status(404).json({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Session not found' } });
      return;
    }
    entry.auth.value = req.headers.authorization;
    await entry.transport.handleRequest(req, res);
  };
  app.get(path, bySession);
  app.delete(path, bySession);
  return Object.assign(app, {
    async closeSessions() {
      for (const { transport } of sessions.values()) await transport.close();
      sessions.clear();
    },
  });
}
