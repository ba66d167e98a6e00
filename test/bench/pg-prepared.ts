/**
 * `npx tsx test/bench/pg-prepared.ts` (needs TEST_DATABASE_URL, e.g. from `.ci/pg-cluster.sh
 * start`): unnamed vs named prepared statements in node-postgres for the gateway's typical
 * statement, a one-row SELECT by primary key, so src/db/pg-sql.ts keeps the faster.
 *
 * Both use the extended protocol; unnamed sends Parse+Bind+Execute+Sync every time, named sends
 * Parse once per connection and then Bind+Execute+Sync. Measured per mode, alternating modes,
 * medians of 7 rounds: wall µs per query sequentially on one client (latency), queries/s with 10
 * concurrent callers on a pool of 10 (throughput), and this process's CPU µs per query
 * (process.cpuUsage), which is what a replica pays whatever the server does.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase } from '../helpers/pg.js';

const ROWS = 10_000;
const SEQ_QUERIES = 5_000;
const CONC_QUERIES = 20_000;
const ROUNDS = 7;
const TEXT = 'SELECT model, key, payload, grant_id, uid, expires_at, consumed_at FROM bench_models WHERE model = $1 AND key = $2';

const db = await createTestDatabase('bench');
const pool = new pg.Pool({ connectionString: db.url, max: 10 });
try {
  await pool.query(`CREATE TABLE bench_models (model TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL, grant_id TEXT, uid TEXT,
    expires_at BIGINT, consumed_at BIGINT, PRIMARY KEY (model, key))`);
  const keys: string[] = [];
  for (let i = 0; i < ROWS; i++) keys.push(randomBytes(32).toString('base64url'));
  await pool.query(
    `INSERT INTO bench_models (model, key, payload, grant_id, expires_at)
     SELECT 'AccessToken', k, repeat('x', 600), 'grant-' || k, 1800000000000 FROM unnest($1::text[]) AS k`,
    [keys],
  );
  await pool.query('ANALYZE bench_models');

  const query = (client: pg.Pool | pg.PoolClient, named: boolean, i: number) =>
    client.query(named ? { name: 'bench_by_pk', text: TEXT, values: ['AccessToken', keys[i % ROWS]] } : { text: TEXT, values: ['AccessToken', keys[i % ROWS]] });

  async function sequential(named: boolean): Promise<{ wallUs: number; cpuUs: number }> {
    const client = await pool.connect();
    try {
      for (let i = 0; i < 200; i++) await query(client, named, i); // warm (and prepare)
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < SEQ_QUERIES; i++) await query(client, named, i);
      const wall = Number(process.hrtime.bigint() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      return { wallUs: wall / SEQ_QUERIES, cpuUs: (cpu.user + cpu.system) / SEQ_QUERIES };
    } finally {
      client.release();
    }
  }

  async function concurrent(named: boolean): Promise<{ qps: number; cpuUs: number }> {
    let next = 0;
    const worker = async () => {
      while (next < CONC_QUERIES) await query(pool, named, next++);
    };
    await Promise.all(Array.from({ length: 10 }, () => query(pool, named, 0))); // warm every connection
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: 10 }, worker));
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    return { qps: CONC_QUERIES / wall, cpuUs: (cpu.user + cpu.system) / CONC_QUERIES };
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const results = { unnamed: { lat: [] as number[], seqCpu: [] as number[], qps: [] as number[], concCpu: [] as number[] }, named: { lat: [] as number[], seqCpu: [] as number[], qps: [] as number[], concCpu: [] as number[] } };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 ? (['named', 'unnamed'] as const) : (['unnamed', 'named'] as const)) {
      const s = await sequential(mode === 'named');
      const c = await concurrent(mode === 'named');
      results[mode].lat.push(s.wallUs);
      results[mode].seqCpu.push(s.cpuUs);
      results[mode].qps.push(c.qps);
      results[mode].concCpu.push(c.cpuUs);
    }
  }
  console.log(`one-row SELECT by primary key, ${ROWS} rows, medians of ${ROUNDS} rounds (PostgreSQL over TCP 127.0.0.1)`);
  console.log('mode     | sequential µs/query | client CPU µs/query | c=10 queries/s | client CPU µs/query (c=10)');
  for (const mode of ['unnamed', 'named'] as const) {
    const r = results[mode];
    console.log(`${mode.padEnd(8)} | ${median(r.lat).toFixed(1).padStart(19)} | ${median(r.seqCpu).toFixed(1).padStart(19)} | ${median(r.qps).toFixed(0).padStart(14)} | ${median(r.concCpu).toFixed(1).padStart(26)}`);
  }
} finally {
  await pool.end();
  await db.drop();
}
