/**
 * admin_sessions table: sessions of the admin pages, with an idle timeout (checked against
 * last_seen_at) and an absolute one (expires_at). Only SHA-256 of the id is stored.
 */
import type { Sql } from '../db/sql.js';
import { randomToken, sha256 } from '../crypto/keys.js';

export interface AdminSession {
  id_hash: string;
  subject: string;
  display_name: string | null;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

export function createAdminSessionStore(sql: Sql) {
  const remove = (idHash: string) => sql.run('DELETE FROM admin_sessions WHERE id_hash = ?', [idHash]);
  return {
    async open(subject: string, displayName: string | undefined, absoluteSeconds: number, now = Date.now()): Promise<string> {
      const id = randomToken();
      await sql.run('INSERT INTO admin_sessions (id_hash, subject, display_name, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)', [
        sha256(id),
        subject,
        displayName ?? null,
        now,
        now,
        now + absoluteSeconds * 1000,
      ]);
      return id;
    },
    /** The session if it is within both timeouts; touching it extends the idle one. */
    async use(id: string | undefined, idleSeconds: number, now = Date.now()): Promise<AdminSession | undefined> {
      if (!id) return undefined;
      const idHash = sha256(id);
      const session = await sql.one<AdminSession>('SELECT id_hash, subject, display_name, created_at, last_seen_at, expires_at FROM admin_sessions WHERE id_hash = ?', [idHash]);
      if (!session) return undefined;
      if (session.expires_at <= now || session.last_seen_at + idleSeconds * 1000 <= now) {
        await remove(idHash);
        return undefined;
      }
      await sql.run('UPDATE admin_sessions SET last_seen_at = ? WHERE id_hash = ?', [now, idHash]);
      return session;
    },
    async close(id: string): Promise<void> {
      await remove(sha256(id));
    },
    async purgeExpired(idleSeconds: number, now = Date.now()): Promise<number> {
      return (await sql.run('DELETE FROM admin_sessions WHERE expires_at <= ? OR last_seen_at <= ?', [now, now - idleSeconds * 1000])).changes;
    },
  };
}

export type AdminSessionStore = ReturnType<typeof createAdminSessionStore>;
