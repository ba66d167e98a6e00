/**
 * SECURITY.md "Audit log access": the verify worker receives the derived audit keys only, never
 * SECRET_KEY. Node starts a worker with a copy of the parent's process.env unless told otherwise;
 * verifyChainInWorker gives it only what `pg` reads (PostgreSQL) or nothing (SQLite). The real
 * Worker starts, with the options P passes, on a probe entry that reports its process.env.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/load.js';
import { verifyChainInWorker, verifyTarget } from '../../src/audit/verify-async.js';

vi.mock('node:worker_threads', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:worker_threads')>();
  const probe = new URL('../helpers/worker-env-probe.js', import.meta.url);
  class ProbeWorker extends actual.Worker {
    constructor(_entry: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      super(probe, options);
    }
  }
  return { ...actual, Worker: ProbeWorker };
});

const SET = ['SECRET_KEY', 'DATABASE_URL', 'PGSSLMODE', 'PGAPPNAME', 'PGADMIN_DEFAULT_PASSWORD'] as const;
const saved = Object.fromEntries(SET.map((name) => [name, process.env[name]]));
afterEach(() => {
  for (const name of SET) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

async function workerEnv(): Promise<Record<string, string>> {
  const { target, env } = verifyTarget(loadConfig(process.env, { requireUpstream: false }));
  const result = (await verifyChainInWorker(target, { keys: [] }, env)) as unknown as { env: Record<string, string> };
  return result.env;
}

describe('audit verify worker › environment', () => {
  it('PostgreSQL: the worker sees what pg reads (PG*, USER, HOME), not SECRET_KEY or anything else', async () => {
    process.env.SECRET_KEY = randomBytes(32).toString('base64url');
    process.env.DATABASE_URL = 'postgres://proxy:db-password@db.internal.example/proxy';
    process.env.PGSSLMODE = 'verify-full';
    process.env.PGAPPNAME = 'proxy';
    process.env.PGADMIN_DEFAULT_PASSWORD = 'pgadmin-secret'; // named PG…, not the driver's
    const seen = await workerEnv();
    expect(seen.SECRET_KEY).toBeUndefined();
    expect(seen.DATABASE_URL).toBeUndefined();
    expect(seen.PGADMIN_DEFAULT_PASSWORD).toBeUndefined();
    expect(seen).toMatchObject({ PGSSLMODE: 'verify-full', PGAPPNAME: 'proxy' });
    expect(Object.keys(seen).filter((name) => !/^PG/.test(name)).sort()).toEqual(['HOME', 'USER'].filter((name) => process.env[name] !== undefined));
  });

  it('SQLite: the worker sees an empty environment', async () => {
    process.env.SECRET_KEY = randomBytes(32).toString('base64url');
    delete process.env.DATABASE_URL;
    expect(await workerEnv()).toEqual({});
  });
});
