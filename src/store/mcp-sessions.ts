/**
 * mcp_sessions table: the owner (subject and client) of each MCP session id R issued, stored only
 * as SHA-256 of the id (GW-09; src/gateway/sessions.ts decides, this module only reads and writes).
 * A binding never changes owner: binding an id that is already bound keeps the first owner
 * (`ON CONFLICT DO NOTHING`, atomic on both engines, whichever replica binds first).
 */
import type { Maybe, Sql } from '../db/sql.js';

export interface McpSessionOwner {
  subject: string;
  client_id: string;
}

export function createMcpSessionStore(sql: Sql) {
  return {
    /** Bind an id to its owner; resolves with the owner on record (the earlier one if it was bound before). */
    async bind(idHash: string, subject: string, clientId: string, now = Date.now()): Promise<McpSessionOwner> {
      const inserted = await sql.run('INSERT INTO mcp_sessions (id_hash, subject, client_id, created_at, last_used_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id_hash) DO NOTHING', [
        idHash,
        subject,
        clientId,
        now,
        now,
      ]);
      if (inserted.changes === 1) return { subject, client_id: clientId };
      return (await sql.one<McpSessionOwner>('SELECT subject, client_id FROM mcp_sessions WHERE id_hash = ?', [idHash])) as McpSessionOwner;
    },
    /** The owner of a bound id, noting its use now; undefined when the id is not bound (synchronous on SQLite when it can be). */
    use(idHash: string, now = Date.now()): Maybe<McpSessionOwner | undefined> {
      return sql.oneNow<McpSessionOwner>('UPDATE mcp_sessions SET last_used_at = ? WHERE id_hash = ? RETURNING subject, client_id', [now, idHash]);
    },
    async remove(idHash: string): Promise<void> {
      await sql.run('DELETE FROM mcp_sessions WHERE id_hash = ?', [idHash]);
    },
    /** Delete bindings unused since `before` (ms); resolves with how many. */
    async purgeIdle(before: number): Promise<number> {
      return (await sql.run('DELETE FROM mcp_sessions WHERE last_used_at <= ?', [before])).changes;
    },
  };
}

export type McpSessionStore = ReturnType<typeof createMcpSessionStore>;
