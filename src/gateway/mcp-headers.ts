/**
 * The MCP request-metadata headers (MCP 2026-07-28 basic/transports/streamable-http, "Request
 * Metadata") — the one module that decides whether the headers of a request whose body the
 * gateway read agree with that body:
 * - GW-16: "Servers that process the request body MUST reject requests where the values specified
 *   in the headers do not match the corresponding values in the request body" ("Server
 *   Validation"): `Mcp-Method` must equal every message's `method`; `Mcp-Name` (after decoding the
 *   `=?base64?…?=` sentinel, "Value Encoding") must equal `params.name` (`tools/call`,
 *   `prompts/get`) or `params.uri` (`resources/read`); `MCP-Protocol-Version` must equal
 *   `_meta["io.modelcontextprotocol/protocolVersion"]` when the body carries one ("Protocol
 *   Version Header").
 * - A revision that defines these headers (2026-07-28 and later, `headerEra`) also requires them:
 *   a missing `Mcp-Method`, or a missing `Mcp-Name` for the three methods above, is a failure
 *   ("Validation failure conditions": "A required standard header … is missing"). Earlier
 *   revisions never sent them; their requests are checked only where a header is present.
 * - A header value that is not visible ASCII, or a sentinel that is not valid Base64 of UTF-8, is a
 *   failure ("A header value contains invalid characters").
 * A failure is 400 with JSON-RPC error -32020 (`HeaderMismatch`); R is not contacted
 * (src/flow/8-gateway.ts). `Mcp-Param-*` headers are forwarded unvalidated: which argument each
 * mirrors is declared in R's tool schemas (`x-mcp-header`), which the gateway does not read —
 * "Intermediate servers that do not recognize an Mcp-Param-{Name} header MUST forward it and
 * otherwise ignore it" ("Server Behavior for Custom Headers"); R validates them.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** The first protocol revision that mirrors body fields into headers (and requires servers to check them). */
export const HEADER_ERA = '2026-07-28';

/** JSON-RPC error code of a header that disagrees with the body (MCP 2026-07-28 schema `HeaderMismatchError`). */
export const HEADER_MISMATCH = -32020;

/** Methods whose target travels in `Mcp-Name`, and the params member it mirrors. */
const NAME_SOURCE: Readonly<Record<string, 'name' | 'uri'>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

const VISIBLE_ASCII = /^[\x20-\x7E\t]*$/;
const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;

/** True when the request's MCP-Protocol-Version is a revision that defines (and requires validating) the mirrored headers. */
export function headerEra(headers: IncomingHttpHeaders): boolean {
  const version = headers['mcp-protocol-version'];
  // Revisions are dates (YYYY-MM-DD): they order as strings.
  return typeof version === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= HEADER_ERA;
}

/** A header's value as the client meant it: the Base64 sentinel decoded; undefined when it is not a valid value. */
export function decodeHeaderValue(raw: string): string | undefined {
  if (!VISIBLE_ASCII.test(raw)) return undefined;
  const sentinel = SENTINEL.exec(raw);
  if (!sentinel) return raw;
  const bytes = Buffer.from(sentinel[1] as string, 'base64');
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  // Base64 that does not round-trip, or bytes that are not UTF-8, are not a value.
  if (bytes.toString('base64').replace(/=+$/, '') !== (sentinel[1] as string).replace(/=+$/, '') || Buffer.from(text, 'utf8').compare(bytes) !== 0) return undefined;
  return text;
}

/** One JSON-RPC message as far as the headers mirror it. */
interface Mirrored {
  method?: unknown;
  params?: { name?: unknown; uri?: unknown; _meta?: Record<string, unknown> } | null;
}

const single = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
};

/**
 * GW-16: undefined when the headers agree with every message of the body, else a sentence saying
 * which header disagrees (never the client's values: they are attacker text).
 */
export function headerMismatch(headers: IncomingHttpHeaders, messages: readonly unknown[]): string | undefined {
  const era = headerEra(headers);
  const method = single(headers, 'mcp-method');
  const rawName = single(headers, 'mcp-name');
  const version = single(headers, 'mcp-protocol-version');
  // A version that is no single revision date (two headers joined by a comma, found by review
  // 2026-12-06) must not switch the checks off: R or a balancer may read its first value.
  if (version !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(version)) return 'the MCP-Protocol-Version header is not one protocol revision';
  if (method !== undefined && !VISIBLE_ASCII.test(method)) return 'the Mcp-Method header contains invalid characters';
  const name = rawName === undefined ? undefined : decodeHeaderValue(rawName);
  if (rawName !== undefined && name === undefined) return 'the Mcp-Name header is not a valid value';
  for (const raw of messages) {
    const message = (raw !== null && typeof raw === 'object' ? raw : {}) as Mirrored;
    const params = message.params !== null && typeof message.params === 'object' ? message.params : undefined;
    if (method === undefined ? era : message.method !== method) return era && method === undefined ? 'the Mcp-Method header is missing' : 'the Mcp-Method header does not match the body';
    const source = typeof message.method === 'string' && Object.hasOwn(NAME_SOURCE, message.method) ? NAME_SOURCE[message.method] : undefined;
    if (name !== undefined || (era && source)) {
      if (name === undefined) return 'the Mcp-Name header is missing';
      if (!source || params?.[source] !== name) return 'the Mcp-Name header does not match the body';
    }
    const meta = params?._meta;
    const bodyVersion = meta !== null && typeof meta === 'object' ? meta['io.modelcontextprotocol/protocolVersion'] : undefined;
    if (bodyVersion !== undefined && bodyVersion !== version) return 'the MCP-Protocol-Version header does not match the body';
  }
  return undefined;
}
