/**
 * GW-09, AT-15: MCP session bindings — the one module that decides whether a request may use the
 * `Mcp-Session-Id` it carries. An id R returned belongs to the user (subject) and the client
 * (client_id) whose request created it:
 * - an id that is not bound ⇒ `unknown`: the gateway answers 404 without contacting R (fail
 *   closed; MCP Streamable HTTP: the client then starts a new session with `initialize`);
 * - an id bound to another subject or another client ⇒ `foreign`: 404 too, without contacting R.
 * Bindings live in the database (mcp_sessions, id as SHA-256 only), so they survive a restart and
 * can be shared by replicas. A binding never changes owner, so a positive answer is cached in
 * process (at most MAX_CACHED_SESSIONS, oldest dropped first) for SESSION_RECHECK_MS; the next
 * request after that re-reads the binding and notes its use in one statement, so a binding ended
 * elsewhere (another replica, housekeeping) stops passing within SESSION_RECHECK_MS. Unknown ids
 * are never cached: each is looked up in the database again.
 * A DELETE that R accepts (2xx), or any answer 404 of R to a session's request, ends the binding;
 * bindings unused for MCP_SESSION_IDLE_MS are purged by housekeeping (src/runtime/maintenance.ts).
 */
import { sha256 } from '../crypto/keys.js';
import type { McpSessionStore } from '../store/mcp-sessions.js';
import { after, type Maybe } from '../db/sql.js';

/** Bindings unused this long are purged (the client then gets 404 and re-initializes). */
export const MCP_SESSION_IDLE_MS = 24 * 3600_000;
/** A cached binding is re-read (and its use noted) after this long. */
export const SESSION_RECHECK_MS = 60_000;
/** Positive lookups kept in process at most. */
export const MAX_CACHED_SESSIONS = 10_000;

export type SessionVerdict = 'ok' | 'unknown' | 'foreign';

/** How a request is refused at step 3: its audit reason and the JSON-RPC error answered. */
export interface SessionRefusal {
  reason: 'unknown_session' | 'foreign_session' | 'legacy_session';
  status: 400 | 404;
  message: string;
  code: number;
}
const REFUSALS: Record<'unknown' | 'foreign' | 'legacy', SessionRefusal> = {
  unknown: { reason: 'unknown_session', status: 404, message: 'Session not found', code: -32001 },
  foreign: { reason: 'foreign_session', status: 404, message: 'Session not found', code: -32001 },
  legacy: { reason: 'legacy_session', status: 400, message: 'Bad Request: a session id in the query (the HTTP+SSE transport) is not supported; use Streamable HTTP', code: -32600 },
};

const LEGACY_SESSION_PARAMS = new Set(['sessionid', 'session_id']);

/**
 * GW-09, AT-15 for the HTTP+SSE transport of MCP 2024-11-05, which names its session in the
 * query (`?sessionId=` in the TypeScript SDK, `?session_id=` in the Python SDK): an id R hands out
 * inside its event stream, where P neither sees nor binds it. P forwards Streamable HTTP only, so
 * a request naming a session that way is refused without contacting R: otherwise any valid token
 * could post into another user's legacy session whose id it had learned. A name counts in any
 * case, percent-encoded or not, and as the bracket syntax of `qs` (express's extended query
 * parser) and PHP reads it — `sessionId[]`, `sessionId[0]`, `[sessionId]` all name `sessionId`
 * there (found by review, 2026-12-06). `query` is the request's query with its `?`, or ''.
 */
export function namesLegacySession(query: string): boolean {
  if (query.length < 2) return false;
  for (const name of new URLSearchParams(query.slice(1)).keys()) for (const read of namesReadFrom(name)) if (LEGACY_SESSION_PARAMS.has(read.toLowerCase())) return true;
  return false;
}

/** A decoded query key, and the name a bracket-reading parser takes from it: before its first `[`, or inside a leading `[…]`. */
function namesReadFrom(key: string): string[] {
  const open = key.indexOf('[');
  if (open === -1) return [key];
  if (open > 0) return [key, key.slice(0, open)];
  const close = key.indexOf(']');
  return close > 1 ? [key, key.slice(1, close)] : [key];
}

const verdict = (owner: { subject: string; clientId: string }, who: SessionOwner): SessionVerdict => (owner.subject === who.subject && owner.clientId === who.clientId ? 'ok' : 'foreign');

export interface SessionOwner {
  subject: string;
  clientId: string;
}

/** The bindings of MCP session ids to their user and client (see the module comment). */
export class SessionBinding {
  private readonly max: number;
  private readonly clock: () => number;
  private readonly cache = new Map<string, { subject: string; clientId: string; checkedAt: number }>();

  constructor(
    private readonly store: McpSessionStore,
    options: { max?: number; now?: () => number } = {},
  ) {
    this.max = options.max ?? MAX_CACHED_SESSIONS;
    this.clock = options.now ?? Date.now;
  }

  private remember(key: string, subject: string, clientId: string, at: number): void {
    this.cache.delete(key);
    this.cache.set(key, { subject, clientId, checkedAt: at });
    if (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value as string);
  }

  /**
   * The gateway's step 3 for one request to the MCP endpoint: undefined when it may go on, else
   * how it is refused (R is not contacted either way). `query` as for namesLegacySession;
   * `sessionId` the request's `Mcp-Session-Id` header.
   */
  judge(query: string, sessionId: string | string[] | undefined, who: SessionOwner): Maybe<SessionRefusal | undefined> {
    if (namesLegacySession(query)) return REFUSALS.legacy;
    if (typeof sessionId !== 'string') return undefined;
    return after(this.check(sessionId, who), (verdict) => (verdict === 'ok' ? undefined : REFUSALS[verdict]));
  }

  /** May `who` use this session id? At once when cached (or read synchronously, SQLite), else a promise. */
  check(sessionId: string, who: SessionOwner): Maybe<SessionVerdict> {
    const key = sha256(sessionId);
    const now = this.clock();
    const owner = this.cache.get(key);
    if (owner && now - owner.checkedAt < SESSION_RECHECK_MS) return verdict(owner, who);
    return after(this.store.use(key, now), (row) => {
      if (!row) {
        this.cache.delete(key);
        return 'unknown';
      }
      this.remember(key, row.subject, row.client_id, now);
      return verdict({ subject: row.subject, clientId: row.client_id }, who);
    });
  }

  /** R issued this session id in answer to `who`'s request; resolves false if it was already someone else's. */
  async bind(sessionId: string, who: SessionOwner): Promise<boolean> {
    const key = sha256(sessionId);
    const now = this.clock();
    const owner = await this.store.bind(key, who.subject, who.clientId, now);
    this.remember(key, owner.subject, owner.client_id, now);
    return owner.subject === who.subject && owner.client_id === who.clientId;
  }

  /** The session ended (DELETE, or R no longer knows it). */
  async forget(sessionId: string): Promise<void> {
    const key = sha256(sessionId);
    this.cache.delete(key);
    await this.store.remove(key);
  }

  /**
   * After R answered a request that carried session id `sent` (or none): the session ended when
   * R accepted its DELETE or no longer knows it (404, MCP Streamable HTTP) — forget it; a new
   * id R issued is bound to `who`. Resolves false when R issued an id already bound to another
   * user or client (it stays theirs); undefined (nothing to wait for) when there is nothing to do.
   * The gateway sends R's answer to the client only once this has resolved, so a client that
   * uses a new session id at once (on any replica) finds it bound.
   */
  afterResponse(method: string | undefined, sent: string | undefined, status: number, issued: string | undefined, who: SessionOwner): Promise<boolean> | undefined {
    if (sent !== undefined && ((method === 'DELETE' && status < 300) || status === 404)) return this.forget(sent).then(() => true);
    if (issued === undefined || issued === sent) return undefined;
    return this.bind(issued, who);
  }

  /** Housekeeping: delete bindings unused for MCP_SESSION_IDLE_MS; returns how many. */
  purgeIdle(now = this.clock()): Promise<number> {
    this.cache.clear();
    return this.store.purgeIdle(now - MCP_SESSION_IDLE_MS);
  }
}

export function createSessionBinding(store: McpSessionStore, options: { max?: number; now?: () => number } = {}): SessionBinding {
  return new SessionBinding(store, options);
}
