/**
 * DESIGN §3: the audit log is append-only (enforced by the database) and tamper-evident
 * (hash chain; verify names the first altered row). On the test engine (TEST_ENGINE,
 * test/helpers/engine.ts): SQLite's triggers, or PostgreSQL's, refuse the same changes with the
 * same message; and appenders racing on separate connections (replicas, DESIGN §8) keep one chain.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Sql } from '../../src/db/sql.js';
import { createAuditLogStore } from '../../src/store/audit-log.js';
import { Audit, GROUP_COMMIT_ROWS, maskedCanonicalJson } from '../../src/audit/audit.js';
import { verifyChain } from '../../src/audit/verify.js';
import { GENESIS_HASH } from '../../src/store/audit-chain.js';
import { KeyRing } from '../../src/crypto/keys.js';
import { dropTrigger, onPostgres, openTestSql } from '../helpers/engine.js';

const ring = new KeyRing(randomBytes(32));
const keys = ring.auditKeys();

const opened: Sql[] = [];
afterAll(async () => {
  for (const sql of opened) await sql.close();
});

/** A connection (SQLite) or pool (PostgreSQL) to data directory `dir`'s database. */
async function connect(dir: string): Promise<Sql> {
  const sql = await openTestSql(dir);
  opened.push(sql);
  return sql;
}

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'audit-append-'));
  const db = await connect(dir);
  const store = createAuditLogStore(db, { key: ring.auditKey });
  const audit = new Audit(store, pino({ level: 'silent' }));
  return { dir, db, store, audit };
}

describe('audit log', () => {
  it('chains every row to the previous one', async () => {
    const { store, audit } = await setup();
    const a = await audit.record({ event: 'registration.accepted', clientId: 'c1', details: { client_name: 'x' } });
    const b = await audit.record({ event: 'registration.rejected', reason: 'invalid_redirect_uri:fragment' });
    expect(a.seq).toBe(1);
    expect(a.prev_hash).toBe(GENESIS_HASH);
    expect(b.prev_hash).toBe(a.hash);
    expect(b.outcome).toBe('deny');
    expect(b.key_id).toBe(ring.auditKey.kid);
    expect(await verifyChain(store, { keys })).toEqual({ ok: true, rows: 2, tipSeq: 2, tipHash: b.hash, legacyRows: 0, keyedFrom: 1, keyIds: [ring.auditKey.kid], checkpointFile: null, checkpoint: null, warnings: [] });
  });

  it('refuses UPDATE and DELETE at the database', async () => {
    const { db, audit } = await setup();
    await audit.record({ event: 'token.issued', clientId: 'c1' });
    await expect(db.run("UPDATE audit_log SET event = 'token.rejected'")).rejects.toThrow('audit_log is append-only');
    await expect(db.run('DELETE FROM audit_log')).rejects.toThrow('audit_log is append-only');
    expect(await db.all('SELECT event FROM audit_log')).toEqual([{ event: 'token.issued' }]);
  });

  it("names the first row changed behind the triggers' back", async () => {
    const { db, store, audit } = await setup();
    for (let i = 0; i < 5; i++) await audit.record({ event: 'token.issued', clientId: `c${i}` });
    await dropTrigger(db, 'audit_log_no_update', 'audit_log');
    await db.run("UPDATE audit_log SET client_id = 'attacker' WHERE seq = 3");
    expect(await verifyChain(store, { keys })).toMatchObject({ ok: false, rows: 2, firstBadSeq: 3, problem: 'row 3 was altered (its MAC does not match its content)' });
  });

  it('detects a deleted row and a re-hashed row that breaks the link', async () => {
    const { db, store, audit } = await setup();
    for (let i = 0; i < 4; i++) await audit.record({ event: 'token.issued', clientId: `c${i}` });
    await dropTrigger(db, 'audit_log_no_delete', 'audit_log');
    await dropTrigger(db, 'audit_log_no_update', 'audit_log');
    await db.run('DELETE FROM audit_log WHERE seq = 2');
    expect(await verifyChain(store, { keys })).toMatchObject({ ok: false, firstBadSeq: 2, problem: 'row 2 is missing (next row is 3)' });
    await db.run("UPDATE audit_log SET seq = 2, prev_hash = 'x' WHERE seq = 3");
    expect(await verifyChain(store, { keys })).toMatchObject({ ok: false, firstBadSeq: 2, problem: 'row 2 does not link to row 1 (prev_hash differs)' });
  });

  it('rejects event names outside the closed list', async () => {
    const { audit } = await setup();
    await expect(audit.record({ event: 'made.up' as never })).rejects.toThrow('unknown audit event made.up');
  });

  it('masks credential-like details at the insertion boundary', async () => {
    expect(JSON.parse(maskedCanonicalJson({ access_token: 'at', nested: { refresh_token: 'rt', client_secret: 's', code: 'c', state: 'st', scope: 'mcp:tools' }, list: [{ code_verifier: 'v' }] }))).toEqual({
      access_token: '[masked]',
      nested: { refresh_token: '[masked]', client_secret: '[masked]', code: '[masked]', state: '[masked]', scope: 'mcp:tools' },
      list: [{ code_verifier: '[masked]' }],
    });
    const { db, audit } = await setup();
    await audit.record({ event: 'token.issued', details: { access_token: 'secret-at-value' } });
    expect(JSON.stringify(await db.all('SELECT seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details, prev_hash, hash, key_id FROM audit_log'))).not.toContain('secret-at-value');
  });

  it('group-commits deferred records, keeps order with direct records, and flushes on demand', async () => {
    const { store, audit } = await setup();
    const append = vi.spyOn(store, 'append');
    audit.defer({ event: 'gateway.forwarded', clientId: 'g1' });
    audit.defer({ event: 'gateway.forwarded', clientId: 'g2' });
    expect(append).not.toHaveBeenCalled();
    expect(await store.count()).toBe(0);
    await audit.record({ event: 'gateway.rejected', reason: 'invalid_token' });
    expect((await store.list({}, 10)).map((r) => r.client_id ?? r.reason)).toEqual(['invalid_token', 'g2', 'g1']);
    for (let i = 0; i < GROUP_COMMIT_ROWS; i++) audit.defer({ event: 'gateway.forwarded' });
    // The GROUP_COMMIT_ROWS-th record starts a group commit at once, not after GROUP_COMMIT_MS.
    expect(append).toHaveBeenCalledTimes(2);
    expect(append.mock.calls[1]?.[0]).toHaveLength(GROUP_COMMIT_ROWS);
    audit.defer({ event: 'gateway.forwarded' });
    await audit.flush();
    expect(await store.count()).toBe(4 + GROUP_COMMIT_ROWS);
    expect((await verifyChain(store, { keys })).ok).toBe(true);
  });

  it('keeps one chain when two connections append (server and CLI)', async () => {
    const { dir, db: one } = await setup();
    const two = await connect(dir);
    const a1 = new Audit(createAuditLogStore(one, { key: ring.auditKey }), pino({ level: 'silent' }));
    const a2 = new Audit(createAuditLogStore(two, { key: ring.auditKey }), pino({ level: 'silent' }));
    for (let i = 0; i < 10; i++) await (i % 2 ? a1 : a2).record({ event: 'token.issued' });
    expect(await verifyChain(createAuditLogStore(one), { keys })).toMatchObject({ ok: true, rows: 10 });
  });

  it(`keeps one chain when appends race ${onPostgres ? 'on two pools (two replicas): the chain lock serializes them' : 'on one connection: the driver serializes them'}`, async () => {
    const { dir, db: one } = await setup();
    // On SQLite one process uses one connection (a second one would block the event loop in
    // SQLite's busy wait while the first holds the write lock); replicas are PostgreSQL's case.
    const two = onPostgres ? await connect(dir) : one;
    const a1 = new Audit(createAuditLogStore(one, { key: ring.auditKey }), pino({ level: 'silent' }));
    const a2 = new Audit(createAuditLogStore(two, { key: ring.auditKey }), pino({ level: 'silent' }));
    const rows = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a1 : a2).record({ event: 'token.issued', clientId: `c${i}` })));
    expect(new Set(rows.map((r) => r.seq)).size).toBe(40);
    expect(await verifyChain(createAuditLogStore(one), { keys })).toMatchObject({ ok: true, rows: 40 });
  });
});
