/**
 * A second anchor for issue 14 (`BARE_STORE=sqlite` in bare-provider.ts): bare oidc-provider with
 * the smallest durable adapter one would write for it — every model in one SQLite table
 * (better-sqlite3, WAL, `synchronous = NORMAL`, as P opens its database), statements prepared once,
 * each adapter call one statement and so one autocommit — and WAL checkpoints where P runs them,
 * in a worker thread (src/db/checkpointer.ts), not inside some request's commit (review
 * 2026-12-06: with SQLite's default they cost the anchor ~60 µs a refresh that P does not pay).
 * None of P's choices beyond that: ids stored raw (not hashed), no transaction per request, no
 * audit row, no triggers, no checks.
 * Its only purpose is to measure how much of P's distance from the in-memory anchor is the cost
 * of keeping tokens in a database at all.
 */
import Database from 'better-sqlite3';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { startCheckpointer } from '../../src/db/checkpointer.js';

export function sqliteAdapterFactory(file: string): { factory: (model: string) => Adapter; close: () => Promise<void> } {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const checkpointer = startCheckpointer(db, file, (message) => process.stderr.write(`bare SQLite checkpointer: ${message}\n`));
  db.exec(`CREATE TABLE IF NOT EXISTS models (
    model TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT, uid TEXT, user_code TEXT, expires_at INTEGER, consumed_at INTEGER,
    PRIMARY KEY (model, id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS models_grant ON models (grant_id) WHERE grant_id IS NOT NULL;
  CREATE INDEX IF NOT EXISTS models_uid ON models (model, uid) WHERE uid IS NOT NULL;`);
  const upsert = db.prepare(
    `INSERT INTO models (model, id, payload, grant_id, uid, user_code, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid, user_code = excluded.user_code, expires_at = excluded.expires_at`,
  );
  const find = db.prepare('SELECT payload, consumed_at FROM models WHERE model = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?)');
  const findByUid = db.prepare('SELECT payload, consumed_at FROM models WHERE model = ? AND uid = ? AND (expires_at IS NULL OR expires_at > ?)');
  const consume = db.prepare('UPDATE models SET consumed_at = ? WHERE model = ? AND id = ?');
  const destroy = db.prepare('DELETE FROM models WHERE model = ? AND id = ?');
  const revokeByGrantId = db.prepare('DELETE FROM models WHERE grant_id = ?');
  const read = (row: unknown): AdapterPayload | undefined => {
    if (!row) return undefined;
    const { payload, consumed_at } = row as { payload: string; consumed_at: number | null };
    const parsed = JSON.parse(payload) as AdapterPayload;
    return consumed_at === null ? parsed : { ...parsed, consumed: consumed_at };
  };

  const factory = (model: string): Adapter => ({
    async upsert(id, payload, expiresIn) {
      const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : null;
      upsert.run(model, id, JSON.stringify(payload), payload.grantId ?? null, payload.uid ?? null, payload.userCode ?? null, expiresAt);
    },
    async find(id) {
      return read(find.get(model, id, Date.now()));
    },
    async findByUid(uid) {
      return read(findByUid.get(model, uid, Date.now()));
    },
    async findByUserCode() {
      return undefined; // no device flow
    },
    async consume(id) {
      consume.run(Math.floor(Date.now() / 1000), model, id);
    },
    async destroy(id) {
      destroy.run(model, id);
    },
    async revokeByGrantId(grantId) {
      revokeByGrantId.run(grantId);
    },
  });
  const close = async () => {
    await checkpointer.stop();
    db.close();
  };
  return { factory, close };
}
