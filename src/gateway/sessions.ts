/**
 * GW-09, AT-15: an MCP session id returned by R belongs to the user whose request created it.
 * A request carrying a session id that this gateway saw issued to another subject is refused
 * (404, as for an unknown session). Remembered in memory, bounded; ids stored as SHA-256.
 */
import { sha256 } from '../crypto/keys.js';

/** Sessions remembered at once; the oldest are forgotten first (then R alone decides). */
export const MAX_TRACKED_SESSIONS = 50_000;

export function createSessionBinding(max = MAX_TRACKED_SESSIONS) {
  const owners = new Map<string, string>();
  return {
    bind(sessionId: string, subject: string): void {
      const key = sha256(sessionId);
      owners.delete(key);
      owners.set(key, subject);
      if (owners.size > max) owners.delete(owners.keys().next().value as string);
    },
    /** false when the session is known to belong to someone else */
    allows(sessionId: string, subject: string): boolean {
      const owner = owners.get(sha256(sessionId));
      return owner === undefined || owner === subject;
    },
    forget(sessionId: string): void {
      owners.delete(sha256(sessionId));
    },
  };
}

export type SessionBinding = ReturnType<typeof createSessionBinding>;
