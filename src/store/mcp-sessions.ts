/**
 * mcp_sessions table: the owner (subject and client) of each MCP session id R issued, stored only
 * as SHA-256 of the id (GW-09; src/gateway/sessions.ts decides, this module only reads and writes).
 * A binding never changes owner: binding an id that is already bound keeps the first owner.
 */
import type { Db } from '../db/open.js';

export interface McpSessionOwner {
  subject: string;
  client_id: string;
}

export function createMcpSessionStore(db: Db) {
  const insert = db.prepare('INSERT INTO mcp_sessions (id_hash, subject, client_id, created_at, last_used_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id_hash) DO NOTHING');
  const get = db.prepare('SELECT subject, client_id FROM mcp_sessions WHERE id_hash = ?');
  const use = db.prepare('UPDATE mcp_sessions SET last_used_at = ? WHERE id_hash = ? RETURNING subject, client_id');
  const remove = db.prepare('DELETE FROM mcp_sessions WHERE id_hash = ?');
  const purge = db.prepare('DELETE FROM mcp_sessions WHERE last_used_at <= ?');
  return {
    /** Bind an id to its owner; returns the owner on record (the earlier one if it was bound before). */
    bind(idHash: string, subject: string, clientId: string, now = Date.now()): McpSessionOwner {
      if (insert.run(idHash, subject, clientId, now, now).changes === 1) return { subject, client_id: clientId };
      return get.get(idHash) as McpSessionOwner;
    },
    /** The owner of a bound id, noting its use now; undefined when the id is not bound. */
    use(idHash: string, now = Date.now()): McpSessionOwner | undefined {
      return use.get(now, idHash) as McpSessionOwner | undefined;
    },
    remove(idHash: string): void {
      remove.run(idHash);
    },
    /** Delete bindings unused since `before` (ms); returns how many. */
    purgeIdle(before: number): number {
      return purge.run(before).changes;
    },
  };
}

export type McpSessionStore = ReturnType<typeof createMcpSessionStore>;
