/**
 * Round trips to PostgreSQL per request (issue 11; src/db/pg-transaction.ts): a transaction's
 * statements are pipelined — BEGIN with the first, writes whose answer nobody reads with the next
 * statement waited for or with COMMIT — and a `/token` request's code or refresh token is read
 * ahead with the provider's client lookup (OidcModelStore.readAhead). Counted as socket writes on
 * the process's pool connections: each write is one round trip. A refresh was 10 before the
 * pipelining, a registration 7.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgSql } from '../../src/db/pg-sql.js';
import { pgDatabasePerFile } from '../helpers/pg.js';
import { authorizeClient, Browser, refresh, startStack, type Stack } from '../helpers/stack.js';
import { registerClient } from '../helpers/app.js';

const db = pgDatabasePerFile('token_round_trips');
let stack: Stack;
const writes: string[] = [];
let counting = false;

beforeAll(async () => {
  stack = await startStack({ env: { DATABASE_URL: db.url } });
  const spied = new WeakSet<object>();
  (stack.app.runtime.sql as PgSql).pool.on('acquire', (client: pg.PoolClient) => {
    const stream = (client as unknown as { connection: { stream: { _write: Function; _writev: Function } } }).connection.stream;
    if (spied.has(stream)) return;
    spied.add(stream);
    const write = stream._write.bind(stream);
    const writev = stream._writev.bind(stream);
    stream._write = (chunk: Buffer, encoding: string, cb: () => void) => (counting && writes.push('write'), write(chunk, encoding, cb));
    stream._writev = (chunks: unknown[], cb: () => void) => (counting && writes.push(`writev×${chunks.length}`), writev(chunks, cb));
  });
});
afterAll(() => stack?.close());

async function counted<T>(work: () => Promise<T>): Promise<{ value: T; writes: string[] }> {
  writes.length = 0;
  counting = true;
  try {
    const value = await work();
    return { value, writes: [...writes] };
  } finally {
    counting = false;
  }
}

describe('round trips to PostgreSQL', () => {
  it('a refresh grant: 5 (the shared rate limit; BEGIN + the read-ahead token + the client; the consume; the two token upserts + the audit chain head; the audit row + COMMIT)', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser('rt-1'), { login: 'rt-1' });
    // Warm: every statement prepared on the pool's connections once.
    const first = await refresh(stack.app, clientId, tokens.body.refresh_token);
    expect(first.status).toBe(200);
    const { value, writes: seen } = await counted(() => refresh(stack.app, clientId, first.body.refresh_token));
    expect(value.status).toBe(200);
    expect(seen.length, seen.join(', ')).toBe(5);
  });

  it('a registration: 3 (the shared rate limit; BEGIN + the client + its clients_meta row + the audit chain head; the audit row + COMMIT)', async () => {
    await registerClient(stack.app);
    const { writes: seen } = await counted(() => registerClient(stack.app));
    expect(seen.length, seen.join(', ')).toBe(3);
  });
});
