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
 */
import type { Db } from '../db/open.js';
import { sha256, type KeyRing } from '../crypto/keys.js';

/** Models whose id is not a bearer credential and is needed in clear (admin, consents). */
const PLAIN_KEY_MODELS = new Set(['Client', 'Grant']);
/** Models stored sealed whole. */
const SEALED_MODELS = new Set(['Session', 'Interaction']);

type Payload = Record<string, unknown> & { jti?: string; grantId?: string; uid?: string; consumed?: number };

interface Row {
  payload: string;
  expires_at: number | null;
}

export function modelKey(model: string, id: string): string {
  return PLAIN_KEY_MODELS.has(model) ? id : sha256(id);
}

function prepareStatements(db: Db) {
  return {
    upsert: db.prepare(`INSERT INTO oidc_models (model, key, payload, grant_id, uid, expires_at)
    VALUES (@model, @key, @payload, @grant_id, @uid, @expires_at)
    ON CONFLICT (model, key) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
      uid = excluded.uid, expires_at = excluded.expires_at`),
    find: db.prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND key = ?'),
    findByUid: db.prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND uid = ?'),
    consume: db.prepare("UPDATE oidc_models SET consumed_at = ?, payload = json_set(payload, '$.consumed', ?) WHERE model = ? AND key = ?"),
    destroy: db.prepare('DELETE FROM oidc_models WHERE model = ? AND key = ?'),
    revokeGrant: db.prepare('DELETE FROM oidc_models WHERE grant_id = ?'),
    destroyGrant: db.prepare("DELETE FROM oidc_models WHERE model = 'Grant' AND key = ?"),
    purge: db.prepare("DELETE FROM oidc_models WHERE expires_at IS NOT NULL AND expires_at < ? AND model <> 'Client'"),
  };
}

/** The row's payload, unless the row is missing or expired. */
function live(row: Row | undefined): Payload | undefined {
  if (!row) return undefined;
  if (row.expires_at !== null && row.expires_at <= Date.now()) return undefined;
  return JSON.parse(row.payload) as Payload;
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

/** The oidc_models table's reads and writes; the statements are prepared once, in the constructor. */
export class OidcModelStore {
  private readonly stmt: ReturnType<typeof prepareStatements>;

  constructor(
    private readonly db: Db,
    private readonly keys: KeyRing,
  ) {
    this.stmt = prepareStatements(db);
  }

  upsert(model: string, id: string, payload: Payload, expiresIn: number | undefined): void {
    this.stmt.upsert.run({
      model,
      key: modelKey(model, id),
      payload: JSON.stringify(atRest(this.keys, model, id, payload)),
      grant_id: payload.grantId ?? null,
      uid: model === 'Interaction' ? null : (payload.uid ?? null),
      expires_at: expiresIn ? Date.now() + expiresIn * 1000 : null,
    });
  }

  find(model: string, id: string): Payload | undefined {
    return restore(this.keys, model, id, live(this.stmt.find.get(model, modelKey(model, id)) as Row | undefined));
  }

  findByUid(model: string, uid: string): Payload | undefined {
    return restore(this.keys, model, undefined, live(this.stmt.findByUid.get(model, uid) as Row | undefined));
  }

  consume(model: string, id: string): void {
    this.stmt.consume.run(Date.now(), Math.floor(Date.now() / 1000), model, modelKey(model, id));
  }

  destroy(model: string, id: string): void {
    this.stmt.destroy.run(model, modelKey(model, id));
  }

  /** Delete every code and token of a grant (oidc-provider calls this per model; once is enough). */
  revokeByGrantId(grantId: string): void {
    this.stmt.revokeGrant.run(grantId);
  }

  /** Delete a grant with everything issued under it. */
  destroyGrant(grantId: string): void {
    this.db.transaction(() => {
      this.stmt.revokeGrant.run(grantId);
      this.stmt.destroyGrant.run(grantId);
    })();
  }

  /**
   * What the live code or refresh token with this value grants, read the way the provider will
   * find it (by the hash of the value): its resource indicators and whether it was already
   * consumed. The token endpoint's preflight compares a requested `resource` with it before the
   * provider consumes anything (TOK-07, RT-04; src/flow/7-token.ts).
   */
  grantSource(model: 'AuthorizationCode' | 'RefreshToken', value: string): { resources: string[]; consumed: boolean } | undefined {
    const payload = live(this.stmt.find.get(model, modelKey(model, value)) as Row | undefined);
    if (!payload) return undefined;
    const resource = payload.resource;
    const resources = resource === undefined ? [] : Array.isArray(resource) ? resource.map(String) : [String(resource)];
    return { resources, consumed: payload.consumed !== undefined };
  }

  /** The live access token whose value hashes (sha256, base64url) to `hash` (gateway, GW-01). */
  findAccessTokenByHash(hash: string): Payload | undefined {
    return live(this.stmt.find.get('AccessToken', hash) as Row | undefined);
  }

  grantExists(grantId: string): boolean {
    return live(this.stmt.find.get('Grant', grantId) as Row | undefined) !== undefined;
  }

  getClient(clientId: string): Payload | undefined {
    return live(this.stmt.find.get('Client', clientId) as Row | undefined);
  }

  deleteClient(clientId: string): void {
    this.stmt.destroy.run('Client', clientId);
  }

  /** Remove expired rows (codes, tokens, sessions, interactions). */
  purgeExpired(): number {
    return this.stmt.purge.run(Date.now()).changes;
  }
}

export function createOidcModelStore(db: Db, keys: KeyRing): OidcModelStore {
  return new OidcModelStore(db, keys);
}
