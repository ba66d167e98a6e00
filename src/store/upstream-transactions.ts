/**
 * upstream_transactions table: one pending upstream authorization per Approve (STATE-01..07).
 * Looked up by SHA-256 of the upstream `state`; the rest is sealed. `consume` is atomic — one
 * `UPDATE … WHERE consumed_at IS NULL … RETURNING` — so the first caller wins, on any replica
 * (STATE-05/06), and every later one learns why it lost.
 */
import type { Sql } from '../db/sql.js';
import { sha256, type KeyRing } from '../crypto/keys.js';

interface TransactionSecrets {
  upstreamScopes: string[];
  nonce: string;
  codeVerifier: string;
}

/** An upstream login on behalf of an MCP client's authorization (after P's consent). */
export interface AuthorizeTransaction extends TransactionSecrets {
  purpose?: 'authorize';
  interactionUid: string;
  clientId: string;
  redirectUri: string;
  resource: string;
  scopes: string[];
  /** SHA-256 of the approving browser's id (absent in transactions from before 0009) */
  browserHash?: string;
  /** the scopes the consent page showed as already allowed: the most a step-up carries over (absent before 2026-12-06: none) */
  shownAsKept?: string[];
}

/** An upstream login to P itself: the admin pages or the user's /account page. */
export interface SignInTransaction extends TransactionSecrets {
  purpose: 'admin' | 'account';
  /** a local path to return to after signing in */
  returnTo: string;
}

export type UpstreamTransaction = AuthorizeTransaction | SignInTransaction;

export type ConsumeResult = { ok: true; transaction: UpstreamTransaction } | { ok: false; reason: 'unknown_state' | 'replayed' | 'expired' };

export function createUpstreamTransactionStore(sql: Sql, keys: KeyRing) {
  const context = (stateHash: string) => `upstream_tx:${stateHash}`;

  return {
    async create(state: string, tx: UpstreamTransaction, ttlSeconds: number, now = Date.now()): Promise<void> {
      const stateHash = sha256(state);
      const clientId = tx.purpose === 'admin' || tx.purpose === 'account' ? `(${tx.purpose} sign-in)` : (tx as AuthorizeTransaction).clientId;
      await sql.run('INSERT INTO upstream_transactions (state_hash, sealed, client_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)', [
        stateHash,
        keys.seal(JSON.stringify(tx), context(stateHash)),
        clientId,
        now,
        now + ttlSeconds * 1000,
      ]);
    },
    async consume(state: string, now = Date.now()): Promise<ConsumeResult> {
      const stateHash = sha256(state);
      const row = await sql.one<{ sealed: string }>('UPDATE upstream_transactions SET consumed_at = ? WHERE state_hash = ? AND consumed_at IS NULL AND expires_at > ? RETURNING sealed', [
        now,
        stateHash,
        now,
      ]);
      if (row) return { ok: true, transaction: JSON.parse(keys.unseal(row.sealed, context(stateHash))) as UpstreamTransaction };
      const existing = await sql.one<{ consumed_at: number | null; expires_at: number }>('SELECT consumed_at, expires_at FROM upstream_transactions WHERE state_hash = ?', [stateHash]);
      if (!existing) return { ok: false, reason: 'unknown_state' };
      return { ok: false, reason: existing.consumed_at !== null ? 'replayed' : 'expired' };
    },
    /** Delete transactions past their expiry (kept a day after it, so a replay is named as such). */
    async purgeExpired(now = Date.now()): Promise<number> {
      return (await sql.run('DELETE FROM upstream_transactions WHERE expires_at <= ?', [now - 24 * 3600_000])).changes;
    },
  };
}

export type UpstreamTransactionStore = ReturnType<typeof createUpstreamTransactionStore>;
