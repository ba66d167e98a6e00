/**
 * DESIGN §3: the audit log is append-only (enforced by the database) and tamper-evident
 * (hash chain; verify names the first altered row).
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { openDatabase } from '../../src/db/open.js';
import { migrate } from '../../src/db/migrate.js';
import { createAuditLogStore } from '../../src/store/audit-log.js';
import { Audit, GROUP_COMMIT_ROWS, maskedCanonicalJson } from '../../src/audit/audit.js';
import { verifyChain } from '../../src/audit/verify.js';
import { GENESIS_HASH } from '../../src/store/audit-chain.js';
import { KeyRing } from '../../src/crypto/keys.js';

const ring = new KeyRing(randomBytes(32));
const keys = ring.auditKeys();

function setup() {
  const db = openDatabase(':memory:');
  migrate(db);
  const store = createAuditLogStore(db, { key: ring.auditKey });
  const audit = new Audit(store, pino({ level: 'silent' }));
  return { db, store, audit };
}

describe('audit log', () => {
  it('chains every row to the previous one', () => {
    const { store, audit } = setup();
    const a = audit.record({ event: 'registration.accepted', clientId: 'c1', details: { client_name: 'x' } });
    const b = audit.record({ event: 'registration.rejected', reason: 'invalid_redirect_uri:fragment' });
    expect(a.seq).toBe(1);
    expect(a.prev_hash).toBe(GENESIS_HASH);
    expect(b.prev_hash).toBe(a.hash);
    expect(b.outcome).toBe('deny');
    expect(b.key_id).toBe(ring.auditKey.kid);
    expect(verifyChain(store, { keys })).toEqual({ ok: true, rows: 2, tipSeq: 2, tipHash: b.hash, legacyRows: 0, keyedFrom: 1, keyIds: [ring.auditKey.kid], checkpointFile: null, checkpoint: null, warnings: [] });
  });

  it('refuses UPDATE and DELETE at the database', () => {
    const { db, audit } = setup();
    audit.record({ event: 'token.issued', clientId: 'c1' });
    expect(() => db.prepare("UPDATE audit_log SET event = 'token.rejected'").run()).toThrow('audit_log is append-only');
    expect(() => db.prepare('DELETE FROM audit_log').run()).toThrow('audit_log is append-only');
    expect(db.prepare('SELECT event FROM audit_log').all()).toEqual([{ event: 'token.issued' }]);
  });

  it('names the first row changed behind the triggers\' back', () => {
    const { db, store, audit } = setup();
    for (let i = 0; i < 5; i++) audit.record({ event: 'token.issued', clientId: `c${i}` });
    db.exec('DROP TRIGGER audit_log_no_update');
    db.prepare("UPDATE audit_log SET client_id = 'attacker' WHERE seq = 3").run();
    expect(verifyChain(store, { keys })).toMatchObject({ ok: false, rows: 2, firstBadSeq: 3, problem: 'row 3 was altered (its MAC does not match its content)' });
  });

  it('detects a deleted row and a re-hashed row that breaks the link', () => {
    const { db, store, audit } = setup();
    for (let i = 0; i < 4; i++) audit.record({ event: 'token.issued', clientId: `c${i}` });
    db.exec('DROP TRIGGER audit_log_no_delete; DROP TRIGGER audit_log_no_update');
    db.prepare('DELETE FROM audit_log WHERE seq = 2').run();
    expect(verifyChain(store, { keys })).toMatchObject({ ok: false, firstBadSeq: 2, problem: 'row 2 is missing (next row is 3)' });
    db.prepare("UPDATE audit_log SET seq = 2, prev_hash = 'x' WHERE seq = 3").run();
    expect(verifyChain(store, { keys })).toMatchObject({ ok: false, firstBadSeq: 2, problem: 'row 2 does not link to row 1 (prev_hash differs)' });
  });

  it('rejects event names outside the closed list', () => {
    const { audit } = setup();
    expect(() => audit.record({ event: 'made.up' as never })).toThrow('unknown audit event made.up');
  });

  it('masks credential-like details at the insertion boundary', () => {
    expect(JSON.parse(maskedCanonicalJson({ access_token: 'at', nested: { refresh_token: 'rt', client_secret: 's', code: 'c', state: 'st', scope: 'mcp:tools' }, list: [{ code_verifier: 'v' }] }))).toEqual({
      access_token: '[masked]',
      nested: { refresh_token: '[masked]', client_secret: '[masked]', code: '[masked]', state: '[masked]', scope: 'mcp:tools' },
      list: [{ code_verifier: '[masked]' }],
    });
    const { db, audit } = setup();
    audit.record({ event: 'token.issued', details: { access_token: 'secret-at-value' } });
    expect(JSON.stringify(db.prepare('SELECT * FROM audit_log').all())).not.toContain('secret-at-value');
  });

  it('group-commits deferred records, keeps order with direct records, and flushes on demand', () => {
    const { store, audit } = setup();
    audit.defer({ event: 'gateway.forwarded', clientId: 'g1' });
    audit.defer({ event: 'gateway.forwarded', clientId: 'g2' });
    expect(store.count()).toBe(0);
    audit.record({ event: 'gateway.rejected', reason: 'invalid_token' });
    expect(store.list({}, 10).map((r) => r.client_id ?? r.reason)).toEqual(['invalid_token', 'g2', 'g1']);
    for (let i = 0; i < GROUP_COMMIT_ROWS; i++) audit.defer({ event: 'gateway.forwarded' });
    expect(store.count()).toBe(3 + GROUP_COMMIT_ROWS);
    audit.defer({ event: 'gateway.forwarded' });
    audit.flush();
    expect(store.count()).toBe(4 + GROUP_COMMIT_ROWS);
    expect(verifyChain(store, { keys }).ok).toBe(true);
  });

  it('keeps one chain when two connections append (server and CLI)', () => {
    const path = `${tmpdir()}/audit-two-${process.pid}-${Date.now()}.db`;
    const one = openDatabase(path);
    migrate(one);
    const two = openDatabase(path);
    const a1 = new Audit(createAuditLogStore(one, { key: ring.auditKey }), pino({ level: 'silent' }));
    const a2 = new Audit(createAuditLogStore(two, { key: ring.auditKey }), pino({ level: 'silent' }));
    for (let i = 0; i < 10; i++) (i % 2 ? a1 : a2).record({ event: 'token.issued' });
    expect(verifyChain(createAuditLogStore(one), { keys })).toMatchObject({ ok: true, rows: 10 });
  });
});
