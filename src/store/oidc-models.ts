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

export function createOidcModelStore(db: Db, keys: KeyRing) {
  const upsertStmt = db.prepare(`INSERT INTO oidc_models (model, key, payload, grant_id, uid, expires_at)
    VALUES (@model, @key, @payload, @grant_id, @uid, @expires_at)
    ON CONFLICT (model, key) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
      uid = excluded.uid, expires_at = excluded.expires_at`);
  const findStmt = db.prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND key = ?');
  const findByUidStmt = db.prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND uid = ?');
  const consumeStmt = db.prepare("UPDATE oidc_models SET consumed_at = ?, payload = json_set(payload, '$.consumed', ?) WHERE model = ? AND key = ?");
  const destroyStmt = db.prepare('DELETE FROM oidc_models WHERE model = ? AND key = ?');
  const revokeGrantStmt = db.prepare('DELETE FROM oidc_models WHERE grant_id = ?');
  const destroyGrantStmt = db.prepare("DELETE FROM oidc_models WHERE model = 'Grant' AND key = ?");
  const purgeStmt = db.prepare("DELETE FROM oidc_models WHERE expires_at IS NOT NULL AND expires_at < ? AND model <> 'Client'");
  const clientsStmt = db.prepare("SELECT payload FROM oidc_models WHERE model = 'Client'");

  function live(row: Row | undefined): Payload | undefined {
    if (!row) return undefined;
    if (row.expires_at !== null && row.expires_at <= Date.now()) return undefined;
    return JSON.parse(row.payload) as Payload;
  }

  function restore(model: string, id: string | undefined, payload: Payload | undefined): Payload | undefined {
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

  return {
    upsert(model: string, id: string, payload: Payload, expiresIn: number | undefined): void {
      let stored: Payload = payload;
      if (model === 'Client' && typeof payload.client_secret === 'string') {
        const { client_secret: secret, ...rest } = payload;
        stored = { ...rest, client_secret_sealed: keys.seal(secret, `client_secret:${id}`) };
      } else if (SEALED_MODELS.has(model)) {
        stored = { sealed: keys.seal(JSON.stringify({ ...payload, jti: id }), `oidc:${model}`) };
      } else if (!PLAIN_KEY_MODELS.has(model)) {
        const { jti: _omit, ...rest } = payload;
        stored = rest;
      }
      upsertStmt.run({
        model,
        key: modelKey(model, id),
        payload: JSON.stringify(stored),
        grant_id: payload.grantId ?? null,
        uid: model === 'Interaction' ? null : (payload.uid ?? null),
        expires_at: expiresIn ? Date.now() + expiresIn * 1000 : null,
      });
    },
    find(model: string, id: string): Payload | undefined {
      return restore(model, id, live(findStmt.get(model, modelKey(model, id)) as Row | undefined));
    },
    findByUid(model: string, uid: string): Payload | undefined {
      return restore(model, undefined, live(findByUidStmt.get(model, uid) as Row | undefined));
    },
    consume(model: string, id: string): void {
      consumeStmt.run(Date.now(), Math.floor(Date.now() / 1000), model, modelKey(model, id));
    },
    destroy(model: string, id: string): void {
      destroyStmt.run(model, modelKey(model, id));
    },
    /** Delete every code and token of a grant (oidc-provider calls this per model; once is enough). */
    revokeByGrantId(grantId: string): void {
      revokeGrantStmt.run(grantId);
    },
    /** Delete a grant with everything issued under it. */
    destroyGrant(grantId: string): void {
      db.transaction(() => {
        revokeGrantStmt.run(grantId);
        destroyGrantStmt.run(grantId);
      })();
    },
    /**
     * What the live code or refresh token with this value grants, read the way the provider will
     * find it (by the hash of the value): its resource indicators and whether it was already
     * consumed. The token endpoint's preflight compares a requested `resource` with it before the
     * provider consumes anything (TOK-07, RT-04; src/flow/7-token.ts).
     */
    grantSource(model: 'AuthorizationCode' | 'RefreshToken', value: string): { resources: string[]; consumed: boolean } | undefined {
      const payload = live(findStmt.get(model, modelKey(model, value)) as Row | undefined);
      if (!payload) return undefined;
      const resource = payload.resource;
      const resources = resource === undefined ? [] : Array.isArray(resource) ? resource.map(String) : [String(resource)];
      return { resources, consumed: payload.consumed !== undefined };
    },
    /** The live access token with this value (gateway, GW-01), looked up by its hash. */
    findAccessToken(value: string): Payload | undefined {
      return live(findStmt.get('AccessToken', sha256(value)) as Row | undefined);
    },
    /** Same, for a value already hashed (sha256, base64url). */
    findAccessTokenByHash(hash: string): Payload | undefined {
      return live(findStmt.get('AccessToken', hash) as Row | undefined);
    },
    grantExists(grantId: string): boolean {
      return live(findStmt.get('Grant', grantId) as Row | undefined) !== undefined;
    },
    getClient(clientId: string): Payload | undefined {
      return live(findStmt.get('Client', clientId) as Row | undefined);
    },
    allClients(): Payload[] {
      return (clientsStmt.all() as { payload: string }[]).map((r) => JSON.parse(r.payload) as Payload);
    },
    deleteClient(clientId: string): void {
      destroyStmt.run('Client', clientId);
    },
    /** Remove expired rows (codes, tokens, sessions, interactions). */
    purgeExpired(): number {
      return purgeStmt.run(Date.now()).changes;
    },
  };
}

export type OidcModelStore = ReturnType<typeof createOidcModelStore>;
