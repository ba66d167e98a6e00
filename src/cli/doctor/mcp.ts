/**
 * Doctor: is MCP_UPSTREAM_URL (R, behind the gateway) reachable from this host, and does it speak
 * MCP? One `initialize` over Streamable HTTP (JSON or an SSE stream, read only up to its answer),
 * sent without a token; an MCP session R opens for it is ended again with DELETE. An R that
 * wants a token (it gets each user's upstream token through the gateway, GW-04) cannot be asked
 * more, and the check says so.
 */
import type { Config } from '../../config/load.js';
import { describeResponse, fail, pass, probe, skipped, unchecked, type CheckResult, type DoctorOptions } from './check.js';
import { packageVersion } from '../version.js';

const TITLE = 'MCP server reachable and speaking MCP';
const PROTOCOL_VERSION = '2025-06-18';

/** The JSON-RPC answer in a JSON body, or in the first `data:` of an SSE stream (at most 64 KB read). */
async function rpcAnswer(res: Response): Promise<Record<string, unknown> | undefined> {
  const sse = res.headers.get('content-type')?.includes('text/event-stream');
  const reader = res.body?.getReader();
  if (!reader) return undefined;
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (text.length < 65_536) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (sse && /^data: .*\n/m.test(text)) break;
    }
  } catch {
    return undefined;
  } finally {
    void reader.cancel().catch(() => undefined);
  }
  const json = sse ? /^data: (.*)$/m.exec(text)?.[1] : text;
  try {
    return JSON.parse(json ?? '') as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function initializeRequest(): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcp-consent-proxy-doctor', version: packageVersion() } },
    }),
  };
}

const notMcpFix = (url: string) =>
  `Set MCP_UPSTREAM_URL to the MCP server's Streamable HTTP endpoint (often ending in /mcp), not its home page or an SSE-only endpoint; check that ${url} is that server.`;

export async function checkMcpUpstream(config: Readonly<Config>, options: DoctorOptions): Promise<CheckResult> {
  if (!config.mcpUpstreamUrl) return skipped('mcp-upstream', TITLE, 'demo mode: /mcp reaches the built-in demo MCP server');
  const url = config.mcpUpstreamUrl.href;
  const got = await probe(url, initializeRequest(), options);
  if (!got.ok) {
    return fail('mcp-upstream', TITLE, `${url}: ${got.problem}`, `Start the MCP server, and check MCP_UPSTREAM_URL and that this host (where the proxy runs) can reach it.`);
  }
  const { res } = got;
  if (res.status === 401 || res.status === 403) {
    const challenge = res.headers.get('www-authenticate');
    return unchecked(
      'mcp-upstream',
      TITLE,
      `reachable; it answers ${res.status}${challenge ? ` (${challenge.split(/\s/)[0]})` : ''} without a token, as a server behind this gateway may (the gateway sends each user's upstream token), so MCP itself cannot be checked from here`,
    );
  }
  const answer = res.ok ? await rpcAnswer(res) : undefined;
  const result = answer?.result as { protocolVersion?: unknown; serverInfo?: { name?: unknown } } | undefined;
  if (answer?.jsonrpc !== '2.0' || typeof result?.protocolVersion !== 'string') {
    return fail('mcp-upstream', TITLE, `${url} answers ${describeResponse(res)}, not an MCP initialize result`, notMcpFix(url));
  }
  const session = res.headers.get('mcp-session-id');
  if (session) await probe(url, { method: 'DELETE', headers: { 'mcp-session-id': session, 'mcp-protocol-version': result.protocolVersion } }, options);
  const name = typeof result.serverInfo?.name === 'string' ? ` "${result.serverInfo.name}"` : '';
  return pass('mcp-upstream', TITLE, `${url}: MCP server${name}, protocol ${result.protocolVersion}`);
}
