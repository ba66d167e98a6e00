/**
 * What the gateway (src/flow/8-gateway.ts) carries from step to step for one request, and the
 * messages of its answers when R fails.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BodyHold } from './read-body.js';

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
  /** the body, once read (forwarded as is), and its hold on GATEWAY_BODY_MEMORY (src/gateway/read-body.ts) */
  body?: Buffer;
  hold?: BodyHold;
  /** the token's last check: the generation it read, when it was made (ms), this process's revocation count then (src/gateway/open-responses.ts), and when its decision lapses */
  generation?: number;
  checkedAt?: number;
  /** the same moment on the monotonic clock (`performance.now()`): how long an open answer has gone unverified is not moved by the wall clock's steps (src/gateway/open-responses.ts) */
  checkedTick?: number;
  epoch?: number;
  until?: number;
  /** the request was checked again before R was asked (at most once for a stale check) */
  rechecked?: boolean;
  /** the tools that body calls, once the policy allowed it (audited with gateway.forwarded) */
  tools?: string[];
}

/**
 * GW-01: R is asked only on a token check made after this process's last revocation and, unless
 * it is already the request's second, younger than this; otherwise the request is checked again
 * from a fresh generation read (src/flow/8-gateway.ts). It bounds what a slowly sent body or a
 * slow upstream refresh could carry past a revocation made elsewhere. 100 ms, not a second (as
 * until 2026-12-07): a request's steps before R take well under it (the gateway bench's p99 at
 * c=100 is ~75 ms), so the second check is rare, and this rule asks for it once at most.
 */
export const CHECK_FRESH_MS = 100;

export const MESSAGES = {
  upstream_unreachable: 'The MCP server is not reachable',
  upstream_timeout: 'The MCP server did not answer in time',
  upstream_encoding: 'The MCP server answered in an encoding the gateway cannot check',
} as const;

/** GW-14: the 401's description once R refused U's token, by what became of that token (src/gateway/upstream-token.ts). */
export const AFTER_UPSTREAM_REFUSAL = {
  renewed: 'the upstream credential was renewed; retry',
  revoked: 'the upstream authorization ended; authorize again',
  unreachable: 'the upstream service refused the credential and it could not be renewed',
  failed: 'the upstream service refused the credential and it could not be renewed',
} as const;
