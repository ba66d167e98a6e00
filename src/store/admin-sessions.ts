/**
 * admin_sessions table: sessions of the admin pages, with an idle timeout (checked against
 * last_seen_at) and an absolute one (expires_at). Only SHA-256 of the id is stored.
 */
import type { Db } from '../db/open.js';
import { randomToken, sha256 } from '../crypto/keys.js';

export interface AdminSession {
  id_hash: string;
  subject: string;
  display_name: string | null;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

export function createAdminSessionStore(db: Db) {
  const insert = db.prepare('INSERT INTO admin_sessions (id_hash, subject, display_name, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)');
  const get = db.prepare('SELECT * FROM admin_sessions WHERE id_hash = ?');
  const seen = db.prepare('UPDATE admin_sessions SET last_seen_at = ? WHERE id_hash = ?');
  const remove = db.prepare('DELETE FROM admin_sessions WHERE id_hash = ?');
  const purge = db.prepare('DELETE FROM admin_sessions WHERE expires_at <= ? OR last_seen_at <= ?');
  return {
    open(subject: string, displayName: string | undefined, absoluteSeconds: number, now = Date.now()): string {
      const id = randomToken();
      insert.run(sha256(id), subject, displayName ?? null, now, now, now + absoluteSeconds * 1000);
      return id;
    },
    /** The session if it is within both timeouts; touching it extends the idle one. */
    use(id: string | undefined, idleSeconds: number, now = Date.now()): AdminSession | undefined {
      if (!id) return undefined;
      const session = get.get(sha256(id)) as AdminSession | undefined;
      if (!session) return undefined;
      if (session.expires_at <= now || session.last_seen_at + idleSeconds * 1000 <= now) {
        remove.run(sha256(id));
        return undefined;
      }
      seen.run(now, sha256(id));
      return session;
    },
    close(id: string): void {
      remove.run(sha256(id));
    },
    purgeExpired(idleSeconds: number, now = Date.now()): number {
      return purge.run(now, now - idleSeconds * 1000).changes;
    },
  };
}

export type AdminSessionStore = ReturnType<typeof createAdminSessionStore>;
