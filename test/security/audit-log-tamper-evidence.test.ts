/**
 * Issue 9, item 1: "The audit log survives someone with write access to the database".
 * The attacker here can edit the SQLite file (drop triggers, rewrite rows, recompute every plain
 * SHA-256 link by hand, delete the tail) and the files next to it, but does not have SECRET_KEY.
 * What is proven (DESIGN §9, SECURITY.md "Tamper-evident audit log"):
 * - a rewritten row is detected (keyed MAC), also when made to look like a legacy row;
 * - a truncated tail is detected through the checkpoint file; an edited or deleted checkpoint
 *   file is detected;
 * - the documented limit: a tail truncated together with a rolled-back checkpoint file passes the
 *   file check, and is caught only with `--checkpoint` from a shipped `audit.checkpoint` line;
 * - rows from before a SECRET_KEY rotation verify with SECRET_KEY_PREVIOUS, and without it the
 *   problem is named; legacy rows from before the keyed chain verify, the boundary is reported;
 * - the database refuses every statement form that would change a row or insert off the head;
 * - the admin page runs the same verification (in its worker).
 * Rows are written through the server's own wiring (startTestApp → createRuntime); every verify
 * runs through the CLI entry, as an operator would. On the test engine (TEST_ENGINE,
 * test/helpers/engine.ts): the attacker edits the SQLite file or the PostgreSQL database alike.
 * Two parts are SQLite's alone and run on SQLite whatever the engine: rows from before the keyed
 * chain (migration 0011; PostgreSQL's schema starts keyed) and SQLite's own statement forms
 * (INSERT OR REPLACE …; PostgreSQL's triggers: test/migrations/migrate-pg.pg.test.ts).
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { run, type Io } from '../../src/cli/index.js';
import { openDatabase, type Db } from '../../src/db/open.js';
import { migrate, MIGRATIONS_DIR } from '../../src/db/migrate.js';
import { SqliteSql } from '../../src/db/sqlite-sql.js';
import type { Sql } from '../../src/db/sql.js';
import { createAuditLogStore } from '../../src/store/audit-log.js';
import { Audit, type AuditEntry } from '../../src/audit/audit.js';
import { KeyRing } from '../../src/crypto/keys.js';
import { startTestApp, TEST_SECRET_KEY } from '../helpers/app.js';
import { Browser, startStack } from '../helpers/stack.js';
import { csrfOf, signIn } from '../helpers/admin.js';
import { databaseEnv, dropTrigger, openTestSql } from '../helpers/engine.js';

/** For the parts that are SQLite's alone: the server and the CLI on SQLite, whatever TEST_ENGINE says. */
const ON_SQLITE = { DATABASE_URL: undefined };

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'audit-tamper-'));
  dirs.push(dir);
  return dir;
}

const OTHER_SECRET_KEY = randomBytes(32).toString('base64');
const kidOf = (secret: string) => new KeyRing(Buffer.from(secret, 'base64')).auditKey.kid;

const DECISIONS: AuditEntry[] = [
  { event: 'registration.accepted', clientId: 'c-1' },
  { event: 'consent.shown', subject: 'alice', clientId: 'c-1' },
  { event: 'consent.approved', subject: 'alice', clientId: 'c-1', details: { scopes: 'mcp:tools' } },
  { event: 'token.issued', subject: 'alice', clientId: 'c-1' },
  { event: 'consent.denied', subject: 'bob', clientId: 'c-1', reason: 'user_denied' },
  { event: 'token.issued', subject: 'alice', clientId: 'c-1' },
];

/** Run P with this data directory, let it record `entries` as it does for decisions, stop it. */
async function serverRecords(dir: string, entries: AuditEntry[], env: Record<string, string | undefined> = {}): Promise<string[]> {
  const app = await startTestApp({ dir, env });
  for (const entry of entries) await app.runtime.audit.record(entry);
  await app.close();
  return app.logLines;
}

function capture(env: Record<string, string | undefined>): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, env, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

/** `mcp-consent-proxy audit verify …` against the data directory. */
async function verify(dir: string, args: string[] = [], env: Record<string, string | undefined> = { SECRET_KEY: TEST_SECRET_KEY }) {
  const io = capture({ ...(await databaseEnv(dir)), ...env });
  const code = await run(['audit', 'verify', ...args], io);
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

async function verifyJson(dir: string, args: string[] = [], env?: Record<string, string | undefined>) {
  const result = await verify(dir, [...args, '--json'], env);
  return { code: result.code, json: JSON.parse(result.out) as Record<string, any> };
}

type Row = Record<string, any>;
const COLUMNS = 'seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details, prev_hash, hash';
const allRows = async (db: Sql): Promise<Row[]> => db.all(`SELECT ${COLUMNS}${(await hasKeyId(db)) ? ', key_id' : ''} FROM audit_log ORDER BY seq`);
/** Whether the schema has key_id (SQLite before migration 0011 has not; PostgreSQL always has). */
const hasKeyId = async (db: Sql) => db.engine === 'postgres' || (db as SqliteSql).db.prepare('PRAGMA table_info(audit_log)').all().some((c) => (c as { name: string }).name === 'key_id');

/** What anyone can compute: the plain SHA-256 link over the canonical row. */
function sha256Link(prev: string, r: Row): string {
  const canonical = JSON.stringify([r.seq, r.ts, r.event, r.outcome, r.reason, r.subject, r.client_id, r.ip, r.request_id, r.details]);
  return createHash('sha256').update(`${prev}\n${canonical}`).digest('hex');
}

/**
 * The attacker: triggers dropped, row `seq` changed by `change`, then every link from there to
 * the end recomputed by hand with plain SHA-256 (optionally with the key id cleared, to pass the
 * rows off as legacy ones).
 */
async function rewrite(dir: string, seq: number, change: (row: Row) => Row, options: { asLegacy?: boolean; sql?: Sql } = {}): Promise<void> {
  const db = options.sql ?? (await openTestSql(dir));
  await dropTrigger(db, 'audit_log_no_update', 'audit_log');
  await dropTrigger(db, 'audit_log_no_delete', 'audit_log');
  const keyed = await hasKeyId(db);
  const rows = await allRows(db);
  let prev = rows.find((r) => r.seq === seq - 1)?.hash ?? '0'.repeat(64);
  for (const original of rows.filter((r) => r.seq >= seq)) {
    const row = original.seq === seq ? change({ ...original }) : { ...original };
    row.prev_hash = prev;
    row.hash = sha256Link(prev, row);
    if (keyed && options.asLegacy) row.key_id = null;
    await db.run(`UPDATE audit_log SET event = ?, outcome = ?, subject = ?, prev_hash = ?, hash = ?${keyed ? ', key_id = ?' : ''} WHERE seq = ?`, [
      row.event,
      row.outcome,
      row.subject,
      row.prev_hash,
      row.hash,
      ...(keyed ? [row.key_id] : []),
      row.seq,
    ]);
    prev = row.hash;
  }
  if (!options.sql) await db.close();
}

async function truncate(dir: string, fromSeq: number): Promise<void> {
  const db = await openTestSql(dir);
  await dropTrigger(db, 'audit_log_no_delete', 'audit_log');
  await db.run('DELETE FROM audit_log WHERE seq >= ?', [fromSeq]);
  await db.close();
}

/** One value read from data directory `dir`'s database. */
async function readOne<T>(dir: string, sql: string, params: unknown[] = []): Promise<T | undefined> {
  const db = await openTestSql(dir);
  try {
    return await db.one<T>(sql, params);
  } finally {
    await db.close();
  }
}

const fileBytes = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);

describe('audit log survives someone with write access to the database', () => {
  it('detects a rewritten row (consent.approved → consent.denied, renamed subject) with its SHA-256 links recomputed by hand', async () => {
    const dir = newDir();
    await serverRecords(dir, DECISIONS);
    expect((await verify(dir)).code).toBe(0);

    await rewrite(dir, 3, (row) => ({ ...row, event: 'consent.denied', outcome: 'deny', subject: 'mallory' }));
    const checkpointBefore = fileBytes(join(dir, 'audit-checkpoint.json'));
    const result = await verify(dir);
    expect(result.code).toBe(1);
    expect(result.err).toContain('audit log BROKEN at row 3: row 3 was altered (its MAC does not match its content)');
    // verify only reads: the forged row is still there for the investigation, the checkpoint is untouched
    expect(await readOne(dir, 'SELECT event, subject FROM audit_log WHERE seq = 3')).toEqual({ event: 'consent.denied', subject: 'mallory' });
    expect(fileBytes(join(dir, 'audit-checkpoint.json'))).toBe(checkpointBefore);
  }, 30_000);

  it('detects a rewritten row passed off as a legacy (unkeyed) row, and a whole log downgraded to legacy rows', async () => {
    const dir = newDir();
    await serverRecords(dir, DECISIONS);
    await rewrite(dir, 3, (row) => ({ ...row, event: 'consent.denied', outcome: 'deny' }), { asLegacy: true });
    const partial = await verify(dir);
    expect(partial.code).toBe(1);
    expect(partial.err).toContain('audit log BROKEN at row 3: row 3 is a plain SHA-256 (legacy) row after the keyed chain began at row 1');

    // every row rewritten as a legacy row: the chain alone is consistent, the checkpoint file is not
    await rewrite(dir, 1, (row) => row, { asLegacy: true });
    const { code, json } = await verifyJson(dir);
    expect(code).toBe(1);
    expect(json).toMatchObject({ ok: false, keyedFrom: null, legacyRows: DECISIONS.length, checkpointFile: { status: 'differs', seq: DECISIONS.length } });
    expect(json.problem).toBe(`row ${DECISIONS.length} differs from the checkpoint file (written ${json.checkpointFile.ts}): the log was rewritten from there or before`);
  }, 30_000);

  it('detects a truncated tail through the checkpoint file', async () => {
    const dir = newDir();
    await serverRecords(dir, DECISIONS);
    await truncate(dir, 5);
    const result = await verify(dir);
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/^audit log BROKEN at row 5: the chain ends at row 4 but the checkpoint file records row 6 \(written [^)]+\): rows 5–6 were removed$/m);
    const { json } = await verifyJson(dir);
    expect(json).toMatchObject({ ok: false, firstBadSeq: 5, tipSeq: 4, checkpointFile: { status: 'beyond_chain', seq: 6, path: join(dir, 'audit-checkpoint.json') } });
  }, 30_000);

  it('a tail truncated together with a rolled-back checkpoint file is NOT detected by the file, but IS with --checkpoint from a shipped audit.checkpoint line (documented limit)', async () => {
    const dir = newDir();
    const checkpointFile = join(dir, 'audit-checkpoint.json');
    await serverRecords(dir, DECISIONS.slice(0, 3));
    const saved = readFileSync(checkpointFile, 'utf8'); // the attacker keeps a genuine old checkpoint
    const logLines = await serverRecords(dir, DECISIONS.slice(3));
    // the last audit.checkpoint line the server logged (at stop), as shipped to a log store
    const shipped = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'audit.checkpoint').at(-1);
    expect(shipped).toMatchObject({ level: 30, seq: 6, key_id: kidOf(TEST_SECRET_KEY) });
    expect(shipped.mac).toMatch(/^[0-9a-f]{64}$/);

    await truncate(dir, 4);
    writeFileSync(checkpointFile, saved);
    const fooled = await verify(dir);
    expect(fooled.code).toBe(0); // the limit: an older consistent pair of database and file
    expect(fooled.out).toContain('audit log intact: 3 rows');
    expect(fooled.out).toContain('row 3');

    const caught = await verify(dir, ['--checkpoint', `${shipped.seq}:${shipped.mac}`]);
    expect(caught.code).toBe(1);
    expect(caught.err).toContain('audit log BROKEN at row 4: the chain ends at row 3 but the given checkpoint records row 6: rows 4–6 were removed');
    const { json } = await verifyJson(dir, ['--checkpoint', `${shipped.seq}:${shipped.mac}`]);
    expect(json).toMatchObject({ ok: false, checkpointFile: { status: 'matches', seq: 3 }, checkpoint: { status: 'beyond_chain', seq: 6 } });
  }, 30_000);

  it('detects a checkpoint file edited by hand (to match a truncated tail), and a deleted one', async () => {
    const dir = newDir();
    const checkpointFile = join(dir, 'audit-checkpoint.json');
    await serverRecords(dir, DECISIONS);
    await truncate(dir, 5);
    const head = (await readOne(dir, 'SELECT seq, hash FROM audit_log WHERE seq = 4')) as { seq: number; hash: string };
    const edited = { ...JSON.parse(readFileSync(checkpointFile, 'utf8')), seq: head.seq, mac: head.hash };
    writeFileSync(checkpointFile, JSON.stringify(edited));
    const result = await verify(dir);
    expect(result.code).toBe(1);
    expect(result.err).toContain(`audit log BROKEN: the checkpoint file ${checkpointFile} was altered (its MAC does not match its content)`);

    rmSync(checkpointFile);
    const deleted = await verify(dir);
    expect(deleted.code).toBe(1);
    expect(deleted.err).toContain(`audit log BROKEN: the checkpoint file ${checkpointFile} is missing although the log has keyed rows`);
    expect(existsSync(checkpointFile)).toBe(false); // verify never writes one
  }, 30_000);

  it('verifies across a SECRET_KEY rotation with SECRET_KEY_PREVIOUS, and names the problem without it', async () => {
    const dir = newDir();
    await serverRecords(dir, DECISIONS.slice(0, 3));
    await serverRecords(dir, DECISIONS.slice(3), { SECRET_KEY: OTHER_SECRET_KEY, SECRET_KEY_PREVIOUS: TEST_SECRET_KEY });
    const rotated = await verifyJson(dir, [], { SECRET_KEY: OTHER_SECRET_KEY, SECRET_KEY_PREVIOUS: TEST_SECRET_KEY });
    expect(rotated.code).toBe(0);
    expect(rotated.json).toMatchObject({ ok: true, rows: 6, keyedFrom: 1, keyIds: [kidOf(TEST_SECRET_KEY), kidOf(OTHER_SECRET_KEY)], checkpointFile: { status: 'matches', seq: 6, key_id: kidOf(OTHER_SECRET_KEY) } });

    const without = await verify(dir, [], { SECRET_KEY: OTHER_SECRET_KEY });
    expect(without.code).toBe(1);
    expect(without.err).toContain(
      `audit log BROKEN at row 1: row 1 was made with audit key ${kidOf(TEST_SECRET_KEY)}, which is neither SECRET_KEY's (${kidOf(OTHER_SECRET_KEY)}) nor SECRET_KEY_PREVIOUS's (not set): after a rotation, set SECRET_KEY_PREVIOUS to the key in use before it`,
    );
    const wrongKey = await verify(dir, [], { SECRET_KEY: randomBytes(32).toString('base64') });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.err).toContain('row 1 was made with audit key');
  }, 30_000);

  it('verifies legacy (plain SHA-256) rows followed by keyed rows and reports where the keyed part starts; a rewritten legacy row is caught by the first keyed row (SQLite: the only engine with rows from before the keyed chain)', async () => {
    const dir = newDir();
    const dbPath = join(dir, 'proxy.db');
    // A database from before the keyed chain: migrations up to 0008, rows chained as that code did.
    const before = join(dir, 'migrations-before');
    mkdirSync(before);
    for (const file of readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql') && Number(f.slice(0, 4)) <= 8)) copyFileSync(join(MIGRATIONS_DIR, file), join(before, file));
    const old = openDatabase(dbPath);
    migrate(old, before);
    let prev = '0'.repeat(64);
    for (const [i, entry] of DECISIONS.slice(0, 3).entries()) {
      const row: Row = { seq: i + 1, ts: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), event: entry.event, outcome: entry.event === 'consent.denied' ? 'deny' : 'allow', reason: null, subject: entry.subject ?? null, client_id: entry.clientId ?? null, ip: null, request_id: null, details: null };
      row.hash = sha256Link(prev, row);
      old.prepare('INSERT INTO audit_log (seq, ts, event, outcome, reason, subject, client_id, ip, request_id, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(row.seq, row.ts, row.event, row.outcome, row.reason, row.subject, row.client_id, row.ip, row.request_id, row.details, prev, row.hash);
      prev = row.hash;
    }
    old.close();

    await serverRecords(dir, DECISIONS.slice(3), ON_SQLITE); // upgrades (0011) and appends keyed rows
    const result = await verify(dir, [], { SECRET_KEY: TEST_SECRET_KEY, ...ON_SQLITE });
    expect(result.code).toBe(0);
    expect(result.out).toContain('rows 1–3: plain SHA-256 (legacy, written before the keyed chain: not tamper-evident on their own against database writers; pinned by row 4\'s MAC over row 3\'s hash)');
    expect(result.out).toContain(`rows 4–6: keyed (HMAC-SHA-256, audit key ${kidOf(TEST_SECRET_KEY)})`);
    const { json } = await verifyJson(dir, [], { SECRET_KEY: TEST_SECRET_KEY, ...ON_SQLITE });
    expect(json).toMatchObject({ ok: true, legacyRows: 3, keyedFrom: 4, tipSeq: 6 });
    const db = new SqliteSql(openDatabase(dbPath));
    expect(await db.one('SELECT prev_hash FROM audit_log WHERE seq = 4')).toEqual({ prev_hash: prev }); // the first keyed row links to the old head

    // a legacy row rewritten, links recomputed through the legacy part and into the keyed part
    await rewrite(dir, 2, (row) => ({ ...row, subject: 'mallory' }), { sql: db });
    await db.close();
    const caught = await verify(dir, [], { SECRET_KEY: TEST_SECRET_KEY, ...ON_SQLITE });
    expect(caught.code).toBe(1);
    expect(caught.err).toContain('audit log BROKEN at row 4: row 4 was altered (its MAC does not match its content)');
  }, 30_000);

  it('ships the head in an audit.checkpoint log line at start, every 10 minutes while serving, and at stop', async () => {
    const dir = newDir();
    const first = (await serverRecords(dir, DECISIONS.slice(0, 2))).map((l) => JSON.parse(l)).filter((l) => l.msg === 'audit.checkpoint');
    expect(first).toEqual([expect.objectContaining({ level: 30, seq: 2, key_id: kidOf(TEST_SECRET_KEY), mac: expect.stringMatching(/^[0-9a-f]{64}$/), ts: expect.any(String) })]); // at stop (the log was empty at start)
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const app = await startTestApp({ dir });
      const lines = () => app.logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'audit.checkpoint');
      await vi.waitFor(() => expect(lines().map((l) => l.seq)).toEqual([2])); // at start
      await app.runtime.audit.record(DECISIONS[2] as AuditEntry);
      vi.advanceTimersByTime(10 * 60_000 - 1);
      expect(lines()).toHaveLength(1);
      // Each line reads the head from the database first (a round trip on PostgreSQL).
      vi.advanceTimersByTime(1);
      await vi.waitFor(() => expect(lines().map((l) => l.seq)).toEqual([2, 3]));
      vi.advanceTimersByTime(10 * 60_000);
      await vi.waitFor(() => expect(lines().map((l) => l.seq)).toEqual([2, 3, 3]));
      await app.close();
      expect(lines().map((l) => l.seq)).toEqual([2, 3, 3, 3]); // at stop
      vi.advanceTimersByTime(60 * 60_000);
      expect(lines()).toHaveLength(4); // the timer went with the runtime
      expect(lines().at(-1).mac).toBe(JSON.parse(readFileSync(join(dir, 'audit-checkpoint.json'), 'utf8')).mac);
    } finally {
      vi.useRealTimers();
    }
  }, 30_000);

  it('the admin page\'s "verify" runs the same verification: a truncated tail is caught through the checkpoint file', async () => {
    const stack = await startStack({ env: { ADMIN_SUBJECTS: 'root' } });
    try {
      const admin = new Browser('admin');
      await signIn(stack, admin, 'admin', 'root');
      let page = await admin.navigate(`${stack.app.url}/admin/audit`);
      page = await admin.navigate(`${stack.app.url}/admin/audit/verify`, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: stack.app.url });
      expect(page.html).toMatch(/Chain intact\.<\/strong> Verified up to row \d+/);
      expect(page.html).toContain(`checkpoint file ${join(stack.app.dir, 'audit-checkpoint.json')}: row`);
      const { sql } = stack.app.runtime;
      const head = (await sql.one<{ n: number }>('SELECT max(seq) AS n FROM audit_log'))?.n as number;
      await dropTrigger(sql, 'audit_log_no_delete', 'audit_log');
      await sql.run('DELETE FROM audit_log WHERE seq >= ?', [head - 1]);
      page = await admin.navigate(`${stack.app.url}/admin/audit/verify`, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: stack.app.url });
      expect(page.html).toContain(`Chain broken at row ${head - 1}.`);
      expect(page.html).toContain(`the chain ends at row ${head - 2} but the checkpoint file records row ${head}`);
    } finally {
      await stack.close();
    }
  }, 60_000);
});

describe("audit log: SQLite refuses every statement form that would change a row or insert off the head (SQLite's own forms; PostgreSQL's: test/migrations/migrate-pg.pg.test.ts)", () => {
  const ring = new KeyRing(randomBytes(32));
  async function seeded() {
    const db = openDatabase(':memory:');
    migrate(db);
    const audit = new Audit(createAuditLogStore(new SqliteSql(db), { key: ring.auditKey }), pino({ level: 'silent' }));
    for (const entry of DECISIONS) await audit.record(entry);
    return db;
  }
  const sqliteRows = (db: Db) => db.prepare('SELECT * FROM audit_log ORDER BY seq').all();
  const sqliteHasKeyId = (db: Db) => (db.prepare('PRAGMA table_info(audit_log)').all() as { name: string }[]).some((c) => c.name === 'key_id');
  // Written so the statements also run against the schema before migration 0011 (no key_id).
  const n = DECISIONS.length;
  const cases: [string, (k: { col: string; val: string }) => string][] = [
    ['INSERT over an existing seq', (k) => `INSERT INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (3, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val})`],
    ['INSERT below the head', (k) => `INSERT INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (0, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val})`],
    ['INSERT OR REPLACE over an existing seq', (k) => `INSERT OR REPLACE INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (3, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val})`],
    ['REPLACE INTO over an existing seq', (k) => `REPLACE INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (3, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val})`],
    ['INSERT OR IGNORE over an existing seq', (k) => `INSERT OR IGNORE INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (3, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val})`],
    ['upsert: INSERT … ON CONFLICT DO UPDATE', (k) => `INSERT INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (3, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val}) ON CONFLICT(seq) DO UPDATE SET event = excluded.event, subject = excluded.subject`],
    ['upsert: INSERT … ON CONFLICT DO NOTHING', (k) => `INSERT INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (3, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val}) ON CONFLICT DO NOTHING`],
    ['INSERT leaving a gap above the head', (k) => `INSERT INTO audit_log (seq, ts, event, outcome, subject, prev_hash, hash${k.col}) VALUES (${n + 2}, 't', 'consent.denied', 'deny', 'mallory', 'x', 'y'${k.val})`],
    ['INSERT at the head without a key id', () => `INSERT INTO audit_log (seq, ts, event, outcome, prev_hash, hash) VALUES (${n + 1}, 't', 'consent.denied', 'deny', 'x', 'y')`],
    ['INSERT without a seq (rowid chosen by SQLite)', (k) => `INSERT INTO audit_log (ts, event, outcome, prev_hash, hash${k.col}) VALUES ('t', 'consent.denied', 'deny', 'x', 'y'${k.val})`],
    ['UPDATE', () => "UPDATE audit_log SET event = 'consent.denied' WHERE seq = 3"],
    ['UPDATE OR REPLACE', () => 'UPDATE OR REPLACE audit_log SET seq = 3 WHERE seq = 4'],
    ['DELETE of the tail', () => `DELETE FROM audit_log WHERE seq = ${n}`],
    ['DELETE of everything (TRUNCATE)', () => 'DELETE FROM audit_log'],
  ];
  it.each(cases)('%s', async (_name, statement) => {
    const db = await seeded();
    const before = sqliteRows(db);
    const sql = statement(sqliteHasKeyId(db) ? { col: ', key_id', val: `, '${ring.auditKey.kid}'` } : { col: '', val: '' });
    expect(() => db.exec(sql)).toThrow(/audit_log is append-only/);
    expect(sqliteRows(db)).toEqual(before);
    db.close();
  });
});

describe('audit log: a checkpoint never names a row that is not committed', () => {
  it('skips a row appended inside a transaction that rolls back, and names the committed head', async () => {
    const dir = newDir();
    const ring = new KeyRing(Buffer.from(TEST_SECRET_KEY, 'base64'));
    const log = pino({ level: 'silent' });
    const db = await openTestSql(dir);
    const { createCheckpointWriter } = await import('../../src/audit/checkpoint.js');
    const checkpointFile = join(dir, 'audit-checkpoint.json');
    const audit = new Audit(createAuditLogStore(db, { key: ring.auditKey }), log, { checkpoint: createCheckpointWriter(checkpointFile, ring.auditKey, log) });
    const committed = await audit.record({ event: 'token.issued', subject: 'alice' });
    await expect(
      db.transaction(async () => {
        await audit.record({ event: 'consent.approved', subject: 'mallory' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await audit.flush();
    expect(JSON.parse(readFileSync(checkpointFile, 'utf8'))).toMatchObject({ seq: committed.seq, mac: committed.hash });
    expect(await db.one('SELECT count(*) AS n FROM audit_log')).toEqual({ n: 1 });
    await db.close();
    expect((await verify(dir)).code).toBe(0);
  });
});
