/**
 * Issue 11 (DESIGN §8), "replicas starting together on an empty database each generate their own
 * signing keys": each replica read no key set, generated one and stored it (the last write won),
 * then signed ID tokens with its own keys while /jwks on the others published different ones — a
 * client verifying an ID token against /jwks fails whenever the balancer picks another replica.
 * Now the keys are created under a lock and re-read after acquiring it (src/runtime/jwks.ts):
 * three runtimes started at once on a fresh PostgreSQL database all publish the same JWKS, the
 * one stored.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rows, startTestApp, type TestApp } from '../helpers/app.js';
import { pgDatabasePerFile } from '../helpers/pg.js';

const db = pgDatabasePerFile('jwks_first_start');
let replicas: TestApp[] = [];
afterAll(async () => {
  for (const replica of replicas) await replica.close();
});

describe('replicas starting together on an empty database each generate their own signing keys', () => {
  it('three runtimes started at once on a fresh database: one stored key set, published by all three', async () => {
    replicas = await Promise.all([1, 2, 3].map(() => startTestApp({ env: { DATABASE_URL: db.url } })));
    const published = await Promise.all(
      replicas.map(async (replica) => {
        const res = await fetch(`${replica.url}/jwks`);
        expect(res.status).toBe(200);
        return ((await res.json()) as { keys: { kid: string }[] }).keys;
      }),
    );
    const kids = published.map((keys) => JSON.stringify(keys.map((k) => k.kid).sort()));
    expect(published[0]?.length).toBeGreaterThan(0);
    expect(new Set(kids).size).toBe(1);
    expect(await rows(replicas[0] as TestApp, "SELECT name FROM sealed_secrets WHERE name = 'jwks'")).toHaveLength(1);
    const stored = JSON.parse((await (replicas[0] as TestApp).runtime.stores.sealed.get('jwks')) as string) as { keys: { kid: string }[] };
    expect(JSON.stringify(stored.keys.map((k) => k.kid).sort())).toBe(kids[0]);
  });
});
