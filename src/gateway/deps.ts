/**
 * What the gateway step (src/flow/8-gateway.ts) needs, and what a route of it is: the services
 * made by the composition root (src/runtime/server.ts) and the per-route facts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import type { Audit } from '../audit/audit.js';
import type { RefusalBudget } from '../audit/refusal-budget.js';
import type { ConsentStore } from '../store/consents.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import type { TokenCheck } from './token-check.js';
import type { UpstreamTokenSource } from './upstream-token.js';
import type { SessionBinding } from './sessions.js';
import type { Forwarder } from './forward.js';
import type { Maybe } from '../db/sql.js';
import type { OpenResponses } from './open-responses.js';
import type { BodyBudget } from './read-body.js';

export interface GatewayDeps {
  config: Readonly<Config>;
  audit: Audit;
  stores: { consents: ConsentStore; clientsMeta: ClientsMetaStore };
  checkToken: TokenCheck;
  upstreamTokens: UpstreamTokenSource;
  sessions: SessionBinding;
  /** the database generation (src/gateway/cache.ts), read once per request: at once on SQLite, a shared round trip on PostgreSQL (src/gateway/generation.ts) */
  generation: () => Maybe<number>;
  /** every forwarded request until its response closes: ended when its token stops passing (GW-01), GET streams at shutdown (src/gateway/open-responses.ts) */
  openResponses: OpenResponses;
  /** the request bodies held at once, across every route (GATEWAY_BODY_MEMORY, src/gateway/read-body.ts) */
  bodies: BodyBudget;
  /** the budget and audit tally for refusals of requests without a valid token */
  refusals: RefusalBudget;
  /** the client address, as TRUST_PROXY says */
  clientIp: (req: IncomingMessage) => string | undefined;
  log: Logger;
  /** observe each forwarded request (metrics) */
  onForwarded?: (resource: string, status: number, seconds: number) => void;
}

export interface GatewayRoute {
  resource: string;
  forwarder: Forwarder;
  methods: readonly string[];
  mcp: boolean;
}

export type GatewayHandler = (req: IncomingMessage, res: ServerResponse, suffix: string) => void;
