/**
 * browser_sessions table: P's own browser session (CONS-04), opened after the upstream login.
 * Only SHA-256 of the session id is stored; the cookie carries the id, signed.
 */
import type { Db } from '../db/open.js';
import { randomToken, sha256 } from '../crypto/keys.js';

export interface BrowserSession {
  id_hash: string;
  subject: string;
  display_name: string | null;
  created_at: number;
  expires_at: number;
  last_seen_at: number;
}

export function createBrowserSessionStore(db: Db) {
  const insert = db.prepare(`INSERT INTO browser_sessions (id_hash, subject, display_name, created_at, expires_at, last_seen_at)
    VALUES (?, ?, ?, ?, ?, ?)`);
  const get = db.prepare('SELECT * FROM browser_sessions WHERE id_hash = ? AND expires_at > ?');
  const seen = db.prepare('UPDATE browser_sessions SET last_seen_at = ? WHERE id_hash = ?');
  const remove = db.prepare('DELETE FROM browser_sessions WHERE id_hash = ?');
  const purge = db.prepare('DELETE FROM browser_sessions WHERE expires_at <= ?');
  return {
    /** Open a session; returns the raw id for the cookie. */
    open(subject: string, displayName: string | undefined, ttlSeconds: number, now = Date.now()): string {
      const id = randomToken();
      insert.run(sha256(id), subject, displayName ?? null, now, now + ttlSeconds * 1000, now);
      return id;
    },
    find(id: string | undefined, now = Date.now()): BrowserSession | undefined {
      return id ? (get.get(sha256(id), now) as BrowserSession | undefined) : undefined;
    },
    seen(id: string, now = Date.now()): void {
      seen.run(now, sha256(id));
    },
    close(id: string): void {
      remove.run(sha256(id));
    },
    purgeExpired(now = Date.now()): number {
      return purge.run(now).changes;
    },
  };
}

export type BrowserSessionStore = ReturnType<typeof createBrowserSessionStore>;
