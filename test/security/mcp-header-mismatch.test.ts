/**
 * GW-16 header/body disagreement (MCP 2026-07-28 Transports §Server Validation): when the gateway
 * reads a body for its tool policy, `Mcp-Method`, `Mcp-Name` (Base64 sentinel decoded) and
 * `MCP-Protocol-Version` must agree with it, and a 2026-07-28 request must carry them. Otherwise
 * 400 with JSON-RPC -32020 (`HeaderMismatch`) — and R receives nothing, so a component that routes
 * or decides on the header cannot be shown one call while R runs another. A body that is not JSON
 * is refused (-32700) rather than handed to a parser that might read it differently.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { mcpPost } from '../helpers/mcp-http.js';

let stack: Stack;
let token: string;
let mcpUrl: string;
beforeAll(async () => {
  stack = await startStack({ env: { MCP_SCOPES: 'mcp:tools mcp:admin', MCP_TOOL_SCOPES: 'whoami=mcp:admin' } });
  mcpUrl = `${stack.app.url}/mcp`;
  token = (await authorizeClient(stack, new Browser(), { scope: 'mcp:tools mcp:admin' })).tokens.body.access_token;
});
afterAll(() => stack.close());

const NEW = '2026-07-28';
const b64 = (s: string) => `=?base64?${Buffer.from(s).toString('base64')}?=`;
const call = (name: string, meta?: string) => ({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name, arguments: {}, ...(meta ? { _meta: { 'io.modelcontextprotocol/protocolVersion': meta } } : {}) } });

async function expectMismatch(body: unknown, headers: Record<string, string>, code = -32020) {
  const before = stack.mcp.received.length;
  const res = await fetch(mcpUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: { code: number } }).error.code).toBe(code);
  expect(stack.mcp.received.length).toBe(before);
}

describe('GW-16 header/body mismatch', () => {
  it('refuses an Mcp-Name that names another tool than the body calls (the listed one hidden behind an unlisted name)', async () => {
    await expectMismatch(call('whoami'), { 'mcp-protocol-version': NEW, 'mcp-method': 'tools/call', 'mcp-name': 'echo' });
    await expectMismatch(call('whoami'), { 'mcp-protocol-version': NEW, 'mcp-method': 'tools/call', 'mcp-name': b64('echo') });
    const row = (await auditEvents(stack.app)).filter((e) => e.event === 'gateway.rejected' && e.reason === 'header_mismatch').at(-1);
    expect(JSON.parse(row?.details ?? '{}').mismatch).toBe('the Mcp-Name header does not match the body');
  });

  it('refuses an Mcp-Method that disagrees with the body, in a batch too', async () => {
    await expectMismatch(call('whoami'), { 'mcp-protocol-version': '2025-03-26', 'mcp-method': 'tools/list' });
    await expectMismatch([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, call('whoami')], { 'mcp-protocol-version': '2025-03-26', 'mcp-method': 'tools/list' });
  });

  it('refuses a 2026-07-28 request without the headers its revision requires', async () => {
    await expectMismatch(call('whoami'), { 'mcp-protocol-version': NEW, 'mcp-method': 'tools/call' });
    await expectMismatch(call('whoami'), { 'mcp-protocol-version': NEW, 'mcp-name': 'whoami' });
  });

  it('refuses an MCP-Protocol-Version that disagrees with the body, and an Mcp-Name that is not a valid value', async () => {
    await expectMismatch(call('whoami', '2025-11-25'), { 'mcp-protocol-version': NEW, 'mcp-method': 'tools/call', 'mcp-name': 'whoami' });
    await expectMismatch(call('whoami'), { 'mcp-protocol-version': NEW, 'mcp-method': 'tools/call', 'mcp-name': '=?base64?/w==?=' });
  });

  it('refuses a body that is not JSON rather than forwarding it', async () => {
    await expectMismatch('{"jsonrpc":"2.0","id":1,"method":"tools/call",}', { 'mcp-protocol-version': '2025-06-18' }, -32700);
  });

  it('forwards a request whose headers agree (Base64 sentinel decoded), headers unchanged', async () => {
    const before = stack.mcp.received.length;
    const headers = { 'mcp-protocol-version': NEW, 'mcp-method': 'tools/call', 'mcp-name': b64('whoami') };
    const res = await mcpPost(mcpUrl, token, call('whoami', NEW), headers);
    expect(res.status).not.toBe(403);
    expect(stack.mcp.received.length).toBe(before + 1);
    expect(stack.mcp.received.at(-1)?.headers).toMatchObject(headers);
  });
});
