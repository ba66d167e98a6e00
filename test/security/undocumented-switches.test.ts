/**
 * Issue 9 item 5: the undocumented `X_NO_ALS` environment switch turned off the per-request
 * context, so audit rows written inside a flow lost their request id and client IP. It is gone,
 * and no module outside src/config reads the environment (DESIGN §4: nothing else reads
 * process.env; every setting is in the documented schema).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : /\.(ts|js)$/.test(name) ? [path] : [];
  });
}

describe('No undocumented switch: X_NO_ALS', () => {
  let app: TestApp;
  beforeAll(async () => {
    process.env.X_NO_ALS = '1';
    app = await startTestApp();
  });
  afterAll(async () => {
    delete process.env.X_NO_ALS;
    await app.close();
  });

  it('keeps the request context whatever the environment says: audit rows carry the request id', async () => {
    const res = await fetch(`${app.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:33418/callback'], token_endpoint_auth_method: 'none' }),
    });
    expect(res.status).toBe(201);
    const { client_id } = (await res.json()) as { client_id: string };
    const [row] = await rows(app, "SELECT request_id, ip FROM audit_log WHERE event = 'registration.accepted' AND client_id = ?", client_id);
    expect(row).toEqual({ request_id: res.headers.get('x-request-id'), ip: '127.0.0.1' });
    expect(await rows(app, 'SELECT ip FROM clients_meta WHERE client_id = ?', client_id)).toEqual([{ ip: '127.0.0.1' }]);
    expect((await registerClient(app)).client_id).toBeTruthy();
  });

  it('reads the environment only in src/config (the CLI entry hands it over whole)', () => {
    const readers = sources(SRC)
      .filter((file) => !relative(SRC, file).startsWith('config/'))
      .filter((file) => /process\.env\s*(\.|\[)/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(SRC, file));
    expect(readers).toEqual([]);
  });
});
