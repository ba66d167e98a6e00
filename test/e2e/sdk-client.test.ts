/**
 * A real MCP client end to end (issue 4): the MCP TypeScript SDK's `Client` with
 * `StreamableHTTPClientTransport` and an `authProvider` meets the 401, registers, authorizes
 * through P's consent page and the (fake) upstream login, then lists tools and calls one through
 * the gateway — and the tool reports the upstream token it received.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Browser, drive, startStack, type Stack } from '../helpers/stack.js';
import { MemoryOAuthProvider } from '../helpers/mcp-client.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

describe('MCP SDK v1 Client through the gateway', () => {
  it('connects, authorizes, lists tools and calls whoami with the user\'s upstream token', async () => {
    const mcpUrl = new URL(`${stack.app.url}/mcp`);
    const provider = new MemoryOAuthProvider('http://127.0.0.1:48124/callback', 'SDK Client');
    const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    const client = new Client({ name: 'e2e', version: '1.0.0' });
    await expect(client.connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    const result = await drive(new Browser(), (provider.authorizationUrl as URL).href, provider.callbackUrl, { login: 'sdk-alice' });
    await first.finishAuth(result.callback.searchParams.get('code') as string);

    const connected = new Client({ name: 'e2e', version: '1.0.0' });
    await connected.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
    const tools = await connected.listTools();
    expect(tools.tools.map((t) => t.name)).toEqual(['whoami', 'echo', 'countdown']);
    const who = await connected.callTool({ name: 'whoami', arguments: { greeting: 'hi' } });
    const upstreamToken = stack.upstream.issued.filter((t) => t.sub === 'sdk-alice').at(-1)?.token as string;
    expect(who.structuredContent).toEqual({ upstream_user: 'sdk-alice', upstream_token_sha256: createHash('sha256').update(upstreamToken).digest('hex') });
    expect((await connected.callTool({ name: 'echo', arguments: { message: 'through the gateway' } })).content).toEqual([{ type: 'text', text: 'through the gateway' }]);
    const resources = await connected.listResources();
    expect(resources.resources.map((r) => r.uri)).toEqual(['demo://about']);
    await connected.close();
  });
});
