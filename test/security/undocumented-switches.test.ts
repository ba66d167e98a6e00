/**
 * Issue 9 item 5: the undocumented `X_NO_ALS` environment switch turned off the per-request
 * context, so audit rows written inside a flow lost their request id and client IP. It is gone,
 * and no module outside src/config reads the environment (DESIGN §4: nothing else reads
 * process.env; every setting is in the documented schema) — through process.env or the
 * environment object the CLI hands over (io.env) — but for `serve`'s NODE_OPTIONS (SECURITY.md
 * "Operations endpoints").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA } from '../../src/config/schema.js';
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

  it('reads the environment only in src/config (the CLI entry hands it over whole), but for serve\'s NODE_OPTIONS', () => {
    // Every read of a named variable from any environment object (process.env, io.env, env, l.env):
    // `x.env.NAME`, `env.NAME`, `env?.NAME`, `env[...]`, and destructuring `{ ... } = <x>.env`.
    const READ = /\benv\??\.([A-Za-z_]\w*)|\benv\s*\[([^\]]*)\]|\{[^{}]*\}\s*=\s*[\w.]*\benv\b/g;
    const reads = sources(SRC)
      .filter((file) => !relative(SRC, file).startsWith('config/'))
      .flatMap((file) => [...readFileSync(file, 'utf8').matchAll(READ)].map((m) => `${relative(SRC, file)}: ${m[0]}`));
    // SECURITY.md "Operations endpoints": serve reads NODE_OPTIONS to leave an operator's heap policy alone.
    expect(reads).toEqual(['cli/commands/serve.ts: env.NODE_OPTIONS']);
  });

  it('src/config reads, by name, only schema keys, CONFIG_FILE and NODE_ENV', () => {
    const NAMED = /\benv\??\.([A-Za-z_]\w*)/g;
    const names = sources(join(SRC, 'config')).flatMap((file) => [...readFileSync(file, 'utf8').matchAll(NAMED)].map((m) => m[1] ?? ''));
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((name) => !(name in SCHEMA) && name !== 'CONFIG_FILE' && name !== 'NODE_ENV')).toEqual([]);
  });
});
