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
/** the SQL of every statement sent on an acquired client while counting */
const statements: string[] = [];
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
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
      if (counting && text) statements.push(text);
      return query(...args);
    };
  });
});
afterAll(() => stack?.close());

async function counted<T>(work: () => Promise<T>): Promise<{ value: T; writes: string[]; statements: string[] }> {
  // The audit rows queued by the steps before (a group commit, GROUP_COMMIT_MS after them) are committed first, not inside the window counted.
  await stack.app.runtime.audit.flush();
  writes.length = 0;
  statements.length = 0;
  counting = true;
  try {
    const value = await work();
    return { value, writes: [...writes], statements: [...statements] };
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

  it('a token request naming no client (no client_id, assertion or Authorization): its token is not read ahead — 3, the shared rate limit and the refusal audit record (BEGIN + the chain head; the row + COMMIT)', async () => {
    const { clientId, tokens } = await authorizeClient(stack, new Browser('rt-2'), { login: 'rt-2' });
    const anonymous = async () => {
      const res = await fetch(`${stack.app.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token }),
      });
      return { status: res.status, body: (await res.json()) as { error: string } };
    };
    await anonymous(); // warm
    const { value, writes: seen, statements: sent } = await counted(anonymous);
    expect(value.status).toBe(400);
    expect(value.body.error).toMatch(/^invalid_(request|client)$/);
    expect(seen.length, `${seen.join(', ')}\n${sent.join('\n')}`).toBe(3); // the statements too: a 4th write seen once under a loaded run (2026-12-08), before `counted` flushed the audit queue
    expect(
      sent.filter((sql) => /oidc_models/.test(sql)),
      sent.join('\n'),
    ).toEqual([]);
    // The control: the same request naming its client is read ahead (and refreshes).
    const named = await counted(() => refresh(stack.app, clientId, tokens.body.refresh_token));
    expect(named.value.status).toBe(200);
    expect(named.writes.length, named.writes.join(', ')).toBe(5);
    expect(named.statements.filter((sql) => /oidc_models/.test(sql)).length).toBeGreaterThan(0);
  });

  it('a registration: 3 (the shared rate limit; BEGIN + the client + its clients_meta row + the audit chain head; the audit row + COMMIT)', async () => {
    await registerClient(stack.app);
    const { writes: seen } = await counted(() => registerClient(stack.app));
    expect(seen.length, seen.join(', ')).toBe(3);
  });
});
