/**
 * What the gateway (src/flow/8-gateway.ts) carries from step to step for one request, and the
 * messages of its answers when R fails.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Whose request it is, once the token check has passed (audit rows, refresh, session binding). */
export type Who = { subject: string; clientId: string };

/** A request in flight: what every later step needs to know about it. */
export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  suffix: string;
  requestId: string;
  ip: string | undefined;
  started: bigint;
  /** the body, once read (forwarded as is) */
  body?: Buffer;
  /** the generation the token was last checked at, and when (ms) that decision lapses (src/gateway/open-responses.ts) */
  generation?: number;
  until?: number;
  /** the tools that body calls, once the policy allowed it (audited with gateway.forwarded) */
  tools?: string[];
}

/** A request body that took longer than this to arrive is followed by a second token check before R is asked (GW-01, src/flow/8-gateway.ts). */
export const BODY_RECHECK_MS = 1_000;

export const MESSAGES = {
  upstream_unreachable: 'The MCP server is not reachable',
  upstream_timeout: 'The MCP server did not answer in time',
  upstream_encoding: 'The MCP server answered in an encoding the gateway cannot check',
} as const;
