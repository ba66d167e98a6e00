/**
 * browser_sessions table: P's own browser session (CONS-04), opened after the upstream login.
 * Only SHA-256 of the session id is stored; the cookie carries the id, signed.
 */
import type { Sql } from '../db/sql.js';
import { randomToken, sha256 } from '../crypto/keys.js';

export interface BrowserSession {
  id_hash: string;
  subject: string;
  display_name: string | null;
  created_at: number;
  expires_at: number;
  last_seen_at: number;
}

export function createBrowserSessionStore(sql: Sql) {
  return {
    /** Open a session; resolves with the raw id for the cookie. */
    async open(subject: string, displayName: string | undefined, ttlSeconds: number, now = Date.now()): Promise<string> {
      const id = randomToken();
      await sql.run('INSERT INTO browser_sessions (id_hash, subject, display_name, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)', [
        sha256(id),
        subject,
        displayName ?? null,
        now,
        now + ttlSeconds * 1000,
        now,
      ]);
      return id;
    },
    async find(id: string | undefined, now = Date.now()): Promise<BrowserSession | undefined> {
      if (!id) return undefined;
      return sql.one<BrowserSession>('SELECT id_hash, subject, display_name, created_at, expires_at, last_seen_at FROM browser_sessions WHERE id_hash = ? AND expires_at > ?', [sha256(id), now]);
    },
    async seen(id: string, now = Date.now()): Promise<void> {
      await sql.run('UPDATE browser_sessions SET last_seen_at = ? WHERE id_hash = ?', [now, sha256(id)]);
    },
    async close(id: string): Promise<void> {
      await sql.run('DELETE FROM browser_sessions WHERE id_hash = ?', [sha256(id)]);
    },
    async purgeExpired(now = Date.now()): Promise<number> {
      return (await sql.run('DELETE FROM browser_sessions WHERE expires_at <= ?', [now])).changes;
    },
  };
}

export type BrowserSessionStore = ReturnType<typeof createBrowserSessionStore>;
