/**
 * Minimal Streamable HTTP client for gateway tests: JSON-RPC over POST, answers read from JSON
 * or from an SSE stream.
 */
export interface McpResponse {
  status: number;
  headers: Headers;
  /** JSON-RPC messages in the response, in order */
  messages: any[];
  text: string;
}

export function parseSse(text: string): any[] {
  return text
    .split(/\n\n/)
    .map((event) => event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n'))
    .filter(Boolean)
    .map((data) => JSON.parse(data));
}

export async function mcpPost(url: string, token: string | undefined, message: unknown, extraHeaders: Record<string, string> = {}): Promise<McpResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', ...extraHeaders };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(message) });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  const messages = type.startsWith('text/event-stream') ? parseSse(text) : type.includes('json') && text ? [JSON.parse(text)] : [];
  return { status: res.status, headers: res.headers, messages, text };
}

export const INITIALIZE = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'gateway-test', version: '1' } } };

/** initialize + initialized; returns the session id. */
export async function openSession(url: string, token: string): Promise<string> {
  const init = await mcpPost(url, token, INITIALIZE);
  if (init.status !== 200) throw new Error(`initialize failed: ${init.status} ${init.text}`);
  const sessionId = init.headers.get('mcp-session-id') as string;
  await mcpPost(url, token, { jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': sessionId });
  return sessionId;
}

export async function callTool(url: string, token: string, sessionId: string, name: string, args: Record<string, unknown> = {}, id = Math.floor(Math.random() * 1e9)) {
  return mcpPost(url, token, { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, { 'mcp-session-id': sessionId });
}
