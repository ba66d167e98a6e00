/**
 * oidc_models table: the persistence behind oidc-provider (its Adapter contract) plus the few
 * direct reads other modules need (the gateway's token lookup, client listings).
 *
 * At rest (DESIGN §3, UP-07): every model except Client and Grant is keyed by SHA-256 of its id
 * and its payload has the raw id (`jti`) removed, so a copy of the database holds no usable
 * code, token, session or interaction id. Session and Interaction payloads are sealed whole
 * (AES-256-GCM): a session is loaded by uid and needs its id back, and an interaction carries
 * the session cookie value and the client's state. Client secrets (confidential DCR clients) are
 * sealed too.
 *
 * Single use (TOK-05, RT-01/02), across requests and replicas: a code or refresh token is consumed
 * by one atomic statement (`UPDATE … SET consumed_at WHERE consumed_at IS NULL RETURNING`), and
 * `consumed_at` is the only record of it — read back into the payload as oidc-provider's
 * `consumed` (seconds), never written into the JSON (no json_* functions: src/db/sql.ts).
 */
import { after, type Maybe, type Sql } from '../db/sql.js';
import { sha256, type KeyRing } from '../crypto/keys.js';
import { ReadsAhead, type Row } from './oidc-read-ahead.js';

/** Models whose id is not a bearer credential and is needed in clear (admin, consents). */
const PLAIN_KEY_MODELS = new Set(['Client', 'Grant']);
/** Models stored sealed whole. */
const SEALED_MODELS = new Set(['Session', 'Interaction']);

type Payload = Record<string, unknown> & { jti?: string; grantId?: string; uid?: string; consumed?: number };

export function modelKey(model: string, id: string): string {
  return PLAIN_KEY_MODELS.has(model) ? id : sha256(id);
}

const FIND = 'SELECT payload, expires_at, consumed_at FROM oidc_models WHERE model = ? AND key = ?';
const UPSERT = `INSERT INTO oidc_models (model, key, payload, grant_id, uid, expires_at) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (model, key) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid, expires_at = excluded.expires_at`;
const REVOKE_GRANT = 'DELETE FROM oidc_models WHERE grant_id = ?';
const EXPIRED = "expires_at IS NOT NULL AND expires_at < ? AND model <> 'Client'";
/** PostgreSQL: this transaction's changes leave the gateway generation where it is (its trigger's once-per-transaction mark set by hand: migrations/postgres/0004-…). */
const GENERATION_NOT_MOVED = "SELECT set_config('mcp_consent_proxy.generation_bumped', CAST(txid_current() AS TEXT), true) AS mark";

/**
 * What `consume` did: the one caller that set `consumed_at` gets `consumed`; a later (or
 * concurrent) one learns whether the row was already consumed — a replay, with its grant — or is
 * gone.
 */
export type ConsumeOutcome = { consumed: true } | { consumed: false; replayed: true; grantId: string | undefined } | { consumed: false; replayed: false };

/** The row's payload, unless the row is missing or expired. */
function live(row: Row | undefined): Payload | undefined {
  if (!row) return undefined;
  if (row.expires_at !== null && row.expires_at <= Date.now()) return undefined;
  const payload = JSON.parse(row.payload) as Payload;
  // consumed_at is the one record of consumption (set atomically by consume); oidc-provider
  // reads it as the payload's `consumed`, in seconds.
  if (row.consumed_at !== null && payload.consumed === undefined) payload.consumed = Math.floor(row.consumed_at / 1000);
  return payload;
}

/** The payload as it is stored: the raw id removed, secrets and whole sessions/interactions sealed. */
function atRest(keys: KeyRing, model: string, id: string, payload: Payload): Payload {
  if (model === 'Client' && typeof payload.client_secret === 'string') {
    const { client_secret: secret, ...rest } = payload;
    return { ...rest, client_secret_sealed: keys.seal(secret, `client_secret:${id}`) };
  }
  if (SEALED_MODELS.has(model)) return { sealed: keys.seal(JSON.stringify({ ...payload, jti: id }), `oidc:${model}`) };
  if (!PLAIN_KEY_MODELS.has(model)) {
    const { jti: _omit, ...rest } = payload;
    return rest;
  }
  return payload;
}

/** The payload as oidc-provider gave it (the inverse of atRest). */
function restore(keys: KeyRing, model: string, id: string | undefined, payload: Payload | undefined): Payload | undefined {
  if (!payload) return payload;
  if (model === 'Client' && typeof payload.client_secret_sealed === 'string') {
    const { client_secret_sealed: sealed, ...rest } = payload;
    return { ...rest, client_secret: keys.unseal(sealed, `client_secret:${String(rest.client_id)}`) };
  }
  if (PLAIN_KEY_MODELS.has(model)) return payload;
  if (SEALED_MODELS.has(model)) {
    try {
      return JSON.parse(keys.unseal(String(payload.sealed), `oidc:${model}`)) as Payload;
    } catch {
      return undefined; // sealed under a key no longer configured: treat as gone
    }
  }
  return id === undefined ? payload : { ...payload, jti: id };
}

/** The oidc_models table's reads and writes. */
const CLIENT_UNLESS_DISABLED = `SELECT m.payload, m.expires_at, m.consumed_at FROM oidc_models m LEFT JOIN clients_meta c ON c.client_id = m.key
  WHERE m.model = 'Client' AND m.key = ? AND c.disabled_at IS NULL`;
// A URL-shaped client_id is a CIMD client even without its clients_meta row (review 2026-12-06).
const CLIENT_UNLESS_DISABLED_OR_CIMD = `${CLIENT_UNLESS_DISABLED} AND (c.kind IS NULL OR c.kind <> 'cimd') AND lower(substr(m.key, 1, 7)) <> 'http://' AND lower(substr(m.key, 1, 8)) <> 'https://'`;

export class OidcModelStore {
  /** Rows read ahead in the current transaction (src/store/oidc-read-ahead.ts). */
  readonly #ahead: ReadsAhead;

  constructor(
    private readonly sql: Sql,
    private readonly keys: KeyRing,
  ) {
    this.#ahead = new ReadsAhead(sql);
  }

  /** A write through this store: rows read ahead in this transaction are no longer served. */
  #wrote(): void {
    this.#ahead.wrote();
  }

  async upsert(model: string, id: string, payload: Payload, expiresIn: number | undefined): Promise<void> {
    this.#wrote();
    const stored = JSON.stringify(atRest(this.keys, model, id, payload));
    const uid = model === 'Interaction' ? null : (payload.uid ?? null);
    // Inside a transaction (/token, /register, /revoke) the answer is not waited for (Sql.runLater): a failure fails the commit.
    await this.sql.runLater(UPSERT, [model, modelKey(model, id), stored, payload.grantId ?? null, uid, expiresIn ? Date.now() + expiresIn * 1000 : null]);
  }

  async find(model: string, id: string): Promise<Payload | undefined> {
    const key = modelKey(model, id);
    const row = (model === 'Grant' ? this.#ahead.takeGrant(key) : undefined) ?? (await this.sql.one<Row>(FIND, [model, key]));
    return restore(this.keys, model, id, live(row));
  }

  /**
   * `find` of a code or refresh token that also reads, in the same statement, the Grant it names:
   * inside a transaction the provider's next step is `find('Grant', grantId)` (oidc-provider's
   * refresh_token and authorization_code grants), answered from this read (src/store/oidc-read-ahead.ts
   * says when, and why it is not stale). Outside a transaction it is `find`. For P's own provider
   * only: Grant is the one grant model keyed by its id in clear.
   */
  async findWithGrant(model: 'RefreshToken' | 'AuthorizationCode', id: string): Promise<Payload | undefined> {
    if (this.sql.transactionScope() === undefined) return this.find(model, id);
    const row = await this.#ahead.withGrant(model, modelKey(model, id));
    return restore(this.keys, model, id, live(row));
  }

  /** Send findWithGrant's read now, in a `/token` transaction (src/store/oidc-read-ahead.ts `readAhead`). */
  readAhead(model: 'RefreshToken' | 'AuthorizationCode', id: string): void {
    this.#ahead.readAhead(model, modelKey(model, id));
  }

  async findByUid(model: string, uid: string): Promise<Payload | undefined> {
    const row = await this.sql.one<Row>('SELECT payload, expires_at, consumed_at FROM oidc_models WHERE model = ? AND uid = ? LIMIT 1', [model, uid]);
    return restore(this.keys, model, undefined, live(row));
  }

  /**
   * Mark a code or token consumed — atomically, in one statement, so of two redemptions racing
   * (two requests, two replicas) exactly one wins (TOK-05, RT-02; the adapter refuses the other).
   */
  async consume(model: string, id: string, now = Date.now()): Promise<ConsumeOutcome> {
    this.#wrote();
    const key = modelKey(model, id);
    const won = await this.sql.one<{ key: string }>('UPDATE oidc_models SET consumed_at = ? WHERE model = ? AND key = ? AND consumed_at IS NULL RETURNING key', [now, model, key]);
    if (won) return { consumed: true };
    const row = await this.sql.one<{ grant_id: string | null }>('SELECT grant_id FROM oidc_models WHERE model = ? AND key = ?', [model, key]);
    return row ? { consumed: false, replayed: true, grantId: row.grant_id ?? undefined } : { consumed: false, replayed: false };
  }

  /** The grant a code or token names (its row as stored, expired or not); undefined without one. */
  async grantOf(model: string, id: string): Promise<string | undefined> {
    return (await this.sql.one<{ grant_id: string | null }>('SELECT grant_id FROM oidc_models WHERE model = ? AND key = ?', [model, modelKey(model, id)]))?.grant_id ?? undefined;
  }

  async destroy(model: string, id: string): Promise<void> {
    this.#wrote();
    await this.sql.run('DELETE FROM oidc_models WHERE model = ? AND key = ?', [model, modelKey(model, id)]);
  }

  /** Delete every code and token of a grant (oidc-provider calls this per model; once is enough). */
  async revokeByGrantId(grantId: string): Promise<void> {
    this.#wrote();
    await this.sql.run(REVOKE_GRANT, [grantId]);
  }

  /** Delete a grant with everything issued under it (one transaction; joins the caller's). */
  destroyGrant(grantId: string): Promise<void> {
    this.#wrote();
    return this.sql.transaction(async () => {
      await this.sql.run(REVOKE_GRANT, [grantId]);
      await this.sql.run("DELETE FROM oidc_models WHERE model = 'Grant' AND key = ?", [grantId]);
    });
  }

  /**
   * What the live code or refresh token with this value grants, read the way the provider will
   * find it (by the hash of the value): its resource indicators and whether it was already
   * consumed. The token endpoint's preflight compares a requested `resource` with it before the
   * provider consumes anything (TOK-07, RT-04; src/flow/7-token.ts).
   */
  async grantSource(model: 'AuthorizationCode' | 'RefreshToken', value: string): Promise<{ resources: string[]; consumed: boolean } | undefined> {
    const payload = live(await this.sql.one<Row>(FIND, [model, modelKey(model, value)]));
    if (!payload) return undefined;
    const resource = payload.resource;
    const resources = resource === undefined ? [] : Array.isArray(resource) ? resource.map(String) : [String(resource)];
    return { resources, consumed: payload.consumed !== undefined };
  }

  /** The live access token whose value hashes (sha256, base64url) to `hash` (gateway, GW-01; synchronous on SQLite when it can be). */
  findAccessTokenByHash(hash: string): Maybe<Payload | undefined> {
    return after(this.sql.oneNow<Row>(FIND, ['AccessToken', hash]), live);
  }

  async grantExists(grantId: string): Promise<boolean> {
    return live(await this.sql.one<Row>(FIND, ['Grant', grantId])) !== undefined;
  }

  /**
   * The client as oidc-provider loads it — unless an admin disabled it (clients_meta.disabled_at):
   * then undefined, so a disabled client can neither authorize nor redeem anything. One statement
   * (a join with clients_meta) instead of a read of each table: one round trip less per
   * /authorize, /token and /revoke on PostgreSQL (issue 11). With `hideCimd` (CIMD_ENABLED=false)
   * a client stored from a metadata document is unknown too: turning CIMD off stops their
   * authorizations, token requests and revocations (access tokens already issued keep working at
   * the gateway until they expire; none can be refreshed).
   */
  async findClientUnlessDisabled(clientId: string, hideCimd = false): Promise<Payload | undefined> {
    const row = await this.sql.one<Row>(hideCimd ? CLIENT_UNLESS_DISABLED_OR_CIMD : CLIENT_UNLESS_DISABLED, [clientId]);
    return restore(this.keys, 'Client', clientId, live(row));
  }

  async getClient(clientId: string): Promise<Payload | undefined> {
    return live(await this.sql.one<Row>(FIND, ['Client', clientId]));
  }

  async deleteClient(clientId: string): Promise<void> {
    this.#wrote();
    await this.sql.run("DELETE FROM oidc_models WHERE model = 'Client' AND key = ?", [clientId]);
  }

  /**
   * Remove expired rows (codes, tokens, sessions, interactions). On PostgreSQL it waits for no lock
   * (review 2026-12-08: it locked the expired rows and then, its trigger, the gateway generation,
   * while a revocation cascade held the generation and went on to delete one of those rows — 40P01,
   * PostgreSQL aborting the cascade or housekeeping's whole run): rows another transaction holds are
   * skipped (the next run takes them), and the purge does not move the generation — an expired
   * access token is refused by its own `exp` whatever the gateway's cache holds (src/gateway/token-check.ts).
   */
  async purgeExpired(now = Date.now()): Promise<number> {
    this.#wrote();
    if (this.sql.engine !== 'postgres') return (await this.sql.run(`DELETE FROM oidc_models WHERE ${EXPIRED}`, [now])).changes;
    // Its own transaction only: joined to another, its mark would keep that one's changes from moving the generation.
    if (this.sql.inTransaction()) throw new Error('purgeExpired runs in a transaction of its own');
    return this.sql.transaction(async () => {
      await this.sql.one(GENERATION_NOT_MOVED);
      return (await this.sql.run(`DELETE FROM oidc_models WHERE (model, key) IN (SELECT model, key FROM oidc_models WHERE ${EXPIRED} FOR UPDATE SKIP LOCKED)`, [now])).changes;
    });
  }
}

export function createOidcModelStore(sql: Sql, keys: KeyRing): OidcModelStore {
  return new OidcModelStore(sql, keys);
}
