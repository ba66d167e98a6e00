/**
 * The 2026-07-28 transport through the gateway (GW-17; MCP 2026-07-28 Transports §Request
 * Metadata): `Mcp-Method`, `Mcp-Name` and every `Mcp-Param-{Name}` reach R unchanged, with and
 * without a tool policy (MCP_TOOL_SCOPES, which makes the gateway read some bodies); a request
 * without `Mcp-Session-Id` (stateless) is forwarded; an `MCP-Protocol-Version` of every revision
 * passes. R here records every request it receives (test/helpers/fake-mcp.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { mcpPost } from '../helpers/mcp-http.js';

const REVISIONS = ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28'];
const META = (v: string) => ({ 'io.modelcontextprotocol/protocolVersion': v });

for (const policy of [undefined, 'echo=mcp:tools']) {
  describe(`gateway › 2026-07-28 transport headers (${policy ? 'with' : 'without'} a tool policy)`, () => {
    let stack: Stack;
    let token: string;
    let mcpUrl: string;
    beforeAll(async () => {
      stack = await startStack({ env: { MCP_TOOL_SCOPES: policy } });
      token = (await authorizeClient(stack, new Browser())).tokens.body.access_token;
      mcpUrl = `${stack.app.url}/mcp`;
    });
    afterAll(() => stack.close());

    it('forwards Mcp-Method, Mcp-Name and Mcp-Param-* unchanged, without a session id', async () => {
      const headers = {
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'mcp-param-region': 'us-west1',
        'mcp-param-greeting': '=?base64?SGVsbG8sIOS4lueVjA==?=',
      };
      const before = stack.mcp.received.length;
      await mcpPost(mcpUrl, token, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' }, _meta: META('2026-07-28') } }, headers);
      expect(stack.mcp.received.length).toBe(before + 1);
      const got = stack.mcp.received.at(-1)?.headers ?? {};
      expect(got).toMatchObject(headers);
      expect(got['mcp-session-id']).toBeUndefined();
      expect(got.authorization).not.toBe(`Bearer ${token}`);
    });

    it('forwards resources/read with its Mcp-Name (a URI) and other methods with Mcp-Method alone', async () => {
      const read = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'resources/read', 'mcp-name': 'demo://about' };
      await mcpPost(mcpUrl, token, { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'demo://about', _meta: META('2026-07-28') } }, read);
      expect(stack.mcp.received.at(-1)?.headers).toMatchObject(read);
      const list = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' };
      await mcpPost(mcpUrl, token, { jsonrpc: '2.0', id: 3, method: 'tools/list', params: { _meta: META('2026-07-28') } }, list);
      expect(stack.mcp.received.at(-1)?.headers).toMatchObject(list);
    });

    it('passes the MCP-Protocol-Version of every revision', async () => {
      for (const version of REVISIONS) {
        const before = stack.mcp.received.length;
        const res = await mcpPost(mcpUrl, token, { jsonrpc: '2.0', id: 4, method: 'ping' }, { 'mcp-protocol-version': version, ...(version >= '2026-07-28' ? { 'mcp-method': 'ping' } : {}) });
        expect([401, 403, 404, 413, 502, 504], version).not.toContain(res.status);
        expect(stack.mcp.received.length, version).toBe(before + 1);
        expect(stack.mcp.received.at(-1)?.headers['mcp-protocol-version']).toBe(version);
      }
    });
  });
}
