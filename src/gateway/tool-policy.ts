/**
 * Per-tool scopes (MCP_TOOL_SCOPES, DESIGN §10) — the one module that decides whether a request's
 * body must be read for policy, and whether a `tools/call` may reach R with the token's scopes:
 * - GW-15: a `tools/call` (a single message or any member of a JSON-RPC batch) for a tool listed
 *   in MCP_TOOL_SCOPES needs that tool's scopes besides the route's scope (the first of
 *   MCP_SCOPES, src/gateway/token-check.ts). A token that lacks any of them is refused with 403
 *   `insufficient_scope` whose `scope` names every scope the request needs — the token's own
 *   included — in one challenge (MCP 2026-07-28 Authz §Scope Challenge Handling: "servers SHOULD
 *   include all scopes required for the current operation in a single challenge"; RFC 6750 §3.1);
 *   R is not contacted. P defines no scope hierarchy (GW-07).
 * - Which bodies are judged (every body is read whole before R is asked, GW-01, src/flow/8-gateway.ts):
 *   none while MCP_TOOL_SCOPES is empty; otherwise every body sent to the MCP endpoint — whatever
 *   `Mcp-Method` says, and whatever the HTTP method: the transport sends JSON-RPC in POSTs only,
 *   but an R that dispatches JSON-RPC whatever the method would run a `tools/call` sent as the
 *   body of a GET or DELETE (review 2026-12-07: such bodies were forwarded unjudged). The 2026-07-28 revision lets an intermediary
 *   trust the mirrored header when the protocol version requires R to validate it (Transports
 *   §Server Validation), but that makes the policy only as strong as R's check: an R that claims
 *   the revision and does not compare would run a `tools/call` sent as `Mcp-Method: tools/list`.
 *   P does not delegate its decision to R (fail closed); the header–body rule below then refuses
 *   the mismatch itself.
 * - A body that was read and is not JSON (or not UTF-8) is refused (400, JSON-RPC -32700) rather than forwarded:
 *   R might parse what P could not, and run a call P never checked (fail closed).
 * - The body P judges must be the body R reads (fail closed; found by review, 2026-12-06): JSON
 *   between systems is UTF-8 (RFC 8259 §8.1), and P reads it so. A `charset` other than UTF-8
 *   (R's body-parser decodes `utf-7` with iconv-lite: `"+AGU-cho"` to P is `"echo"` to R) or a
 *   `Content-Encoding` other than identity (R may inflate what P read as compressed bytes) is
 *   refused with 415 before the body is judged (RFC 9110 §15.5.16).
 * - Nor may its member names leave room for another reading (RFC 8259 §4; found by review,
 *   2026-12-06): a name twice in one object (JSON.parse keeps the last, other parsers the first),
 *   or, in a JSON-RPC message or its params, names equal ignoring case (src/gateway/json-members.ts)
 *   — 400, JSON-RPC -32600, before anything is judged.
 * - When the body was read, its headers must agree with it (GW-16, src/gateway/mcp-headers.ts):
 *   checked first, so a refusal never trusts a header the body contradicts.
 * - The 403's challenge names the scopes the call needs and the token's own MCP scopes (MCP_SCOPES)
 *   it holds (challengeScopes, src/gateway/token-check.ts): a client that re-authorizes with
 *   exactly that set keeps what it had.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isUtf8 } from 'node:buffer';
import { HEADER_MISMATCH, headerMismatch } from './mcp-headers.js';
import { hasRequestBody, readBody, type BodyHold } from './read-body.js';
import { ambiguousMember } from './json-members.js';
import { challengeScopes } from './token-check.js';

/** A refusal carries what the gateway writes (status, JSON-RPC code and message) and audits (reason, details). */
export type ToolVerdict =
  /** `tools`: the tools the body calls (at most AUDITED_TOOLS names), for the gateway.forwarded row */
  | { ok: true; tools?: string[] }
  | { ok: false; status: 400; reason: 'invalid_json' | 'invalid_request' | 'ambiguous_json' | 'header_mismatch'; code: number; message: string; details: Record<string, unknown> }
  | { ok: false; status: 415; reason: 'unsupported_encoding'; code: number; message: string; details: Record<string, unknown> }
  | { ok: false; status: 403; reason: 'insufficient_scope'; code: number; message: string; details: { tools: string[]; missing: string[] }; needed: string[] };

/** `check`'s answer: the body to forward, a refusal to write (413 for a body over the limit, 503 when the bodies held at once would pass GATEWAY_BODY_MEMORY), or status 0 when the client left. */
export type ToolCheck =
  | { ok: true; body: Buffer; tools?: string[] }
  | Exclude<ToolVerdict, { ok: true }>
  | { ok: false; status: 413; reason: 'body_too_large'; code: number; message: string; details: Record<string, unknown> }
  | { ok: false; status: 503; reason: 'body_memory_full'; code: number; message: string; details: Record<string, unknown> }
  | { ok: false; status: 0 };

export interface ToolPolicy {
  /** true when this request's body must be judged before it may be forwarded */
  judges(req: IncomingMessage): boolean;
  /** the decision for a body that was read, with the token's scopes */
  decide(body: Buffer, headers: IncomingHttpHeaders, granted: ReadonlySet<string>): ToolVerdict;
  /** read the body (at most `limit` bytes, each taken from `hold`: src/gateway/read-body.ts) and, when `judges(req)`, decide */
  check(req: IncomingMessage, granted: ReadonlySet<string>, limit: number, hold: BodyHold): Promise<ToolCheck>;
}

/** At most this many tool names (each cut at 100 characters) go into a gateway.forwarded row. */
export const AUDITED_TOOLS = 20;

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Why a parsed body holds a message P cannot judge (undefined when it holds none): every message,
 * alone or in a batch, is an object (JSON-RPC 2.0 §4, §6), and a `tools/call` names its tool as a
 * string in an object `params` (MCP `CallToolRequest`). Anything else was forwarded as "calls no
 * tool" (review 2026-12-07) — `params: ["delete_repo", {}]`, `"name": ["delete_repo"]`, a batch
 * inside a batch — while an R on a generic JSON-RPC library (positional params), one that looks
 * the tool up by `tools[params.name]` (`["delete_repo"]` is `"delete_repo"` there) or one that
 * flattens batches would run the call P never checked (fail closed).
 */
function unjudgeable(messages: readonly unknown[]): string | undefined {
  for (const m of messages) {
    if (!isObject(m)) return 'a JSON-RPC message must be an object';
    // A method that is not a string (`["tools/call"]`) is read as "tools/call" by an R that looks it up in a table (review 2026-12-07).
    if ('method' in m && typeof m.method !== 'string') return 'a JSON-RPC method must be a string';
    if (m.method === 'tools/call' && !(isObject(m.params) && typeof m.params.name === 'string')) return 'a tools/call must name its tool as a string in an object params';
  }
  return undefined;
}

/** The names of the tools called in a parsed body (one message or a batch) that `unjudgeable` let through. */
function calledTools(messages: readonly unknown[]): string[] {
  const tools: string[] = [];
  for (const m of messages as { method?: unknown; params: { name: string } }[]) if (m.method === 'tools/call') tools.push(m.params.name);
  return tools;
}

/** Why R might not read these bytes as the UTF-8 JSON P reads (a charset, a Content-Encoding); undefined when it reads them so. */
export function notReadAsJudged(headers: IncomingHttpHeaders): string | undefined {
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.trim() !== '' && encoding.trim().toLowerCase() !== 'identity') return 'Content-Encoding';
  const type = headers['content-type'];
  if (type === undefined) return undefined;
  for (const param of type.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const charset = param
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
    if (charset !== 'utf-8' && charset !== 'utf8') return 'charset';
  }
  return undefined;
}

/** The policy for MCP_TOOL_SCOPES (`pairs`) on a route whose every request needs `routeScope`; `mcpScopes` is MCP_SCOPES. */
export function createToolPolicy(pairs: readonly { tool: string; scope: string }[], routeScope: string, mcpScopes: readonly string[] = [routeScope]): ToolPolicy {
  const byTool = new Map<string, string[]>();
  for (const { tool, scope } of pairs) byTool.set(tool, [...(byTool.get(tool) ?? []), scope]);
  const active = byTool.size > 0;

  const policy: ToolPolicy = {
    judges(req) {
      return active && hasRequestBody(req);
    },

    decide(body, headers, granted) {
      const unread = notReadAsJudged(headers);
      if (unread)
        return { ok: false, status: 415, reason: 'unsupported_encoding', code: -32600, message: `Unsupported ${unread}: the body must be UTF-8 JSON, not encoded`, details: { header: unread } };
      // Bytes that are not UTF-8 would be judged through replacement characters, and R's decoder may differ (RFC 8259 §8.1).
      if (!isUtf8(body)) return { ok: false, status: 400, reason: 'invalid_json', code: -32700, message: 'Parse error: the request body is not UTF-8', details: { utf8: false } };
      let parsed: unknown;
      const text = body.toString('utf8');
      try {
        parsed = JSON.parse(text);
      } catch {
        return { ok: false, status: 400, reason: 'invalid_json', code: -32700, message: 'Parse error: the request body is not JSON', details: {} };
      }
      const ambiguous = ambiguousMember(text);
      if (ambiguous) return { ok: false, status: 400, reason: 'ambiguous_json', code: -32600, message: `Invalid Request: ${ambiguous}`, details: { ambiguous } };
      const messages = Array.isArray(parsed) ? parsed : [parsed];
      const shape = unjudgeable(messages);
      if (shape) return { ok: false, status: 400, reason: 'invalid_request', code: -32600, message: `Invalid Request: ${shape}`, details: { shape } };
      const mismatch = headerMismatch(headers, messages);
      if (mismatch) return { ok: false, status: 400, reason: 'header_mismatch', code: HEADER_MISMATCH, message: `Header mismatch: ${mismatch}`, details: { mismatch } };
      const called = calledTools(messages);
      const allowed: ToolVerdict = called.length ? { ok: true, tools: [...new Set(called)].slice(0, AUDITED_TOOLS).map((t) => t.slice(0, 100)) } : { ok: true };
      const tools = called.filter((t) => byTool.has(t));
      if (!tools.length) return allowed;
      const needed = [...new Set([routeScope, ...tools.flatMap((t) => byTool.get(t) as string[])])];
      const missing = needed.filter((s) => !granted.has(s));
      if (!missing.length) return allowed;
      const message = `this tool call requires the scopes ${needed.join(' ')}`;
      return { ok: false, status: 403, reason: 'insufficient_scope', code: -32003, message, details: { tools: [...new Set(tools)], missing }, needed: challengeScopes(needed, mcpScopes, granted) };
    },

    async check(req, granted, limit, hold) {
      const read = await readBody(req, limit, hold);
      if (read.ok) {
        // A GET or DELETE that declared a body and sent none carries nothing to judge.
        if (!policy.judges(req) || (req.method !== 'POST' && read.body.length === 0)) return { ok: true, body: read.body };
        const verdict = policy.decide(read.body, req.headers, granted);
        return verdict.ok ? { ok: true, body: read.body, ...(verdict.tools ? { tools: verdict.tools } : {}) } : verdict;
      }
      if (read.reason === 'client_closed') return { ok: false, status: 0 };
      if (read.reason === 'body_memory_full')
        return { ok: false, status: 503, reason: 'body_memory_full', code: -32000, message: 'The server holds too many request bodies at once; try again in a moment.', details: {} };
      return { ok: false, status: 413, reason: 'body_too_large', code: -32000, message: `Request body exceeds ${limit} bytes`, details: {} };
    },
  };
  return policy;
}
