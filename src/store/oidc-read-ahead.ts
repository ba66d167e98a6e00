/**
 * Rows of oidc_models read ahead inside one transaction (issue 11: round trips per `/token` on
 * PostgreSQL), for src/store/oidc-models.ts:
 * - `withGrant`: a code or refresh token is read together with the Grant it names (one join), and
 *   the provider's next read, `find('Grant', grantId)`, is answered from it (`takeGrant`) — once.
 * - `readAhead`: at the start of a `/token` transaction (src/provider/request-transaction.ts) the
 *   request's code or refresh token is sent before the provider asks for it (Sql.oneLater: on
 *   PostgreSQL it leaves with the provider's client lookup); the provider's `withGrant` of it then
 *   takes that read instead of making its own. Nothing on SQLite (`oneLater` is `one` there).
 * Any write through the store in between (`wrote`) — and one made while a read was under way —
 * makes the next read go to the database again. Everything is per transaction (the Sql's
 * transactionScope, a WeakMap key): gone with it, and never served once a statement in it failed.
 *
 * Staleness (PostgreSQL, READ COMMITTED): these rows are read a statement or two earlier than the
 * provider would read them, in the same transaction, before anything is consumed or issued. A grant
 * revoked in between deletes its codes and tokens with it (revokeByGrantId, destroyGrant), so the
 * provider's atomic consume that follows finds no row and the request fails and rolls back — the
 * outcome of reading after the revocation (test/unit/oidc-models.test.ts). One path has no consume:
 * a replayed (already consumed) refresh token, whose grant the provider then revokes as reuse
 * (RT-02). If the grant was revoked in that window, the provider revokes it again — deleting nothing
 * more — and P records the reuse, where a read after the revocation would have answered "grant not
 * found"; either way the request is refused.
 */
import type { Sql } from '../db/sql.js';

export interface Row {
  payload: string;
  expires_at: number | null;
  consumed_at: number | null;
}

interface RowWithGrant extends Row {
  grant_key: string | null;
  grant_payload: string | null;
  grant_expires_at: number | null;
  grant_consumed_at: number | null;
}

/** A code or refresh token with the Grant it names, in one statement. */
const FIND_WITH_GRANT = `SELECT t.payload, t.expires_at, t.consumed_at, g.key AS grant_key, g.payload AS grant_payload, g.expires_at AS grant_expires_at, g.consumed_at AS grant_consumed_at
  FROM oidc_models t LEFT JOIN oidc_models g ON g.model = 'Grant' AND g.key = t.grant_id WHERE t.model = ? AND t.key = ?`;

interface State {
  /** writes through the store in this transaction so far */
  writes: number;
  /** Grant rows joined by withGrant, by key: each taken once */
  grants: Map<string, Row>;
  /** reads sent by readAhead, by model and key, with the write count when they were sent */
  ahead: Map<string, { read: Promise<RowWithGrant | undefined>; writes: number }>;
}

export class ReadsAhead {
  readonly #states = new WeakMap<object, State>();

  constructor(private readonly sql: Sql) {}

  #state(): State | undefined {
    const scope = this.sql.transactionScope();
    if (scope === undefined) return undefined;
    let state = this.#states.get(scope);
    if (state === undefined) this.#states.set(scope, (state = { writes: 0, grants: new Map(), ahead: new Map() }));
    return state;
  }

  /** A write through the store: nothing read ahead in this transaction is served from now on. */
  wrote(): void {
    const scope = this.sql.transactionScope();
    const state = scope === undefined ? undefined : this.#states.get(scope);
    if (state === undefined) return;
    state.writes++;
    state.grants.clear();
    state.ahead.clear();
  }

  /** Send the read of this code or refresh token (and its grant) now, without waiting. Outside a transaction, or on SQLite: nothing. */
  readAhead(model: string, key: string): void {
    if (this.sql.engine !== 'postgres') return;
    const state = this.#state();
    if (state === undefined) return;
    const read = this.sql.oneLater<RowWithGrant>(FIND_WITH_GRANT, [model, key]);
    read.catch(() => undefined); // a failure dooms the transaction; the read that takes it sees it
    state.ahead.set(`${model} ${key}`, { read, writes: state.writes });
  }

  /** The code or refresh token, with its grant kept for `takeGrant` — from readAhead when nothing was written since, else read now. Inside a transaction only. */
  async withGrant(model: string, key: string): Promise<Row | undefined> {
    const state = this.#state() as State;
    const ahead = state.ahead.get(`${model} ${key}`);
    state.ahead.delete(`${model} ${key}`);
    const writes = ahead?.writes ?? state.writes;
    const row = ahead !== undefined ? await ahead.read : await this.sql.one<RowWithGrant>(FIND_WITH_GRANT, [model, key]);
    // A write made while the read was under way (or since it was sent ahead) may have changed the grant: keep nothing then.
    if (row?.grant_key != null && row.grant_payload !== null && state.writes === writes) {
      state.grants.set(row.grant_key, { payload: row.grant_payload, expires_at: row.grant_expires_at, consumed_at: row.grant_consumed_at });
    }
    return row;
  }

  /** The Grant row withGrant read in this transaction, once. */
  takeGrant(key: string): Row | undefined {
    const scope = this.sql.transactionScope();
    const grants = scope === undefined ? undefined : this.#states.get(scope)?.grants;
    const row = grants?.get(key);
    if (row !== undefined) grants!.delete(key);
    return row;
  }
}
