/**
 * docs/compose/replicas.yml (README "Running several replicas") cannot be run here (no Docker, no
 * network), so it is checked statically: every setting it gives the proxy is a real configuration
 * key and, with sample values for its ${VARIABLES}, a valid configuration; the image it builds and
 * the command it runs exist; the files it mounts exist; the Caddyfile balances over exactly its
 * replicas on the port the image listens on; the README shows grants.sql as it is; the one Node
 * option it sets (NODE_OPTIONS) is one node accepts there and honours; its connection sizing
 * counts the lock pool; /metrics is not reachable from outside: the Caddyfile answers every path
 * a replica serves it on (probed on the real app) itself, and the replicas require METRICS_TOKEN.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { SCHEMA } from '../../src/config/schema.js';
import { loadConfig } from '../../src/config/load.js';
import { run } from '../../src/cli/index.js';
import { LOCK_POOL_MAX } from '../../src/db/pg-locks.js';
import { startTestApp } from '../helpers/app.js';
import { FOUR_MB_SEMI_SPACES_MAX_MB, youngGenerationMb } from '../helpers/young-generation.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const DIR = join(ROOT, 'docs/compose');
const text = readFileSync(join(DIR, 'replicas.yml'), 'utf8');
const compose = parse(text) as { services: Record<string, { image?: string; build?: string; command?: string[]; environment?: Record<string, string>; volumes?: string[]; expose?: string[] }> };
const services = Object.entries(compose.services);
const proxies = services.filter(([, s]) => s.image === 'mcp-consent-proxy');
const replicas = proxies.filter(([name]) => name.startsWith('replica-'));

const SAMPLE: Record<string, string> = {
  PUBLIC_HOST: 'mcp.example.com',
  PG_OWNER_PASSWORD: 'owner-password',
  APP_DB_PASSWORD: 'app-password',
  PROXY_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
  PROXY_METRICS_TOKEN: 'metrics-token-0123456789abcdef',
  GITHUB_CLIENT_ID: 'Iv1.0123456789abcdef',
  GITHUB_CLIENT_SECRET: 'github-client-secret',
};
// ${NAME}, and ${NAME:?message} (compose refuses to start when NAME is unset or empty).
const VARIABLE = /\$\{(\w+)(?::\?[^}]*)?\}/g;
const substitute = (value: string) => value.replace(VARIABLE, (whole, name: string) => SAMPLE[name] ?? whole);

/** The Caddyfile's directive lines, comments dropped, each with the block depth it stands at (1: the site block). */
function caddyDirectives(caddyfile: string): { depth: number; tokens: string[] }[] {
  const lines: { depth: number; tokens: string[] }[] = [];
  let depth = 0;
  for (const raw of caddyfile.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    if (line === '}') {
      depth -= 1;
      continue;
    }
    const opens = line.endsWith('{');
    lines.push({ depth, tokens: (opens ? line.slice(0, -1) : line).trim().split(/\s+/) });
    if (opens) depth += 1;
  }
  return lines;
}

/** Caddy's path matcher (http.matchers.path): case-insensitive; exact, or a prefix match when the pattern ends in `*`. */
function caddyPathMatches(patterns: string[], path: string): boolean {
  const lower = path.toLowerCase();
  return patterns.some((p) => (p.endsWith('*') ? lower.startsWith(p.slice(0, -1).toLowerCase()) : lower === p.toLowerCase()));
}

/** A GET with the path sent byte for byte (fetch would normalise `/./`, `..` and the like first). */
function rawGet(origin: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    request({ hostname, port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('docs/compose/replicas.yml', () => {
  it('names only ${VARIABLES} its header documents', () => {
    const used = new Set([...text.matchAll(VARIABLE)].map((m) => m[1] as string));
    expect([...used].sort()).toEqual(Object.keys(SAMPLE).sort());
    const header = text.split('\n').filter((l) => l.startsWith('#')).join('\n');
    for (const name of used) expect(header).toContain(name);
  });

  it('gives the proxy only real configuration keys, and each replica a valid configuration on PostgreSQL', () => {
    expect(replicas.length).toBeGreaterThanOrEqual(2);
    for (const [name, service] of proxies) {
      // NODE_OPTIONS is node's own variable (checked below), every other key must be the proxy's.
      for (const key of Object.keys(service.environment ?? {})) if (key !== 'NODE_OPTIONS') expect(Object.keys(SCHEMA), `${name}: ${key}`).toContain(key);
    }
    for (const [, service] of replicas) {
      const env = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, substitute(String(v))]));
      const config = loadConfig({ ...env, NODE_ENV: 'production', HOST: '0.0.0.0' }); // the image's ENV
      expect(config.databaseUrl).toMatch(/^postgres:\/\/mcp_app:/);
      expect(config.trustProxy).toBe(1);
      expect(config.demo).toBe(false);
    }
    // Every replica the same configuration (the same SECRET_KEY above all): interchangeable.
    expect(new Set(replicas.map(([, s]) => JSON.stringify(s.environment))).size).toBe(1);
  });

  it('gives each replica a 4 MB young generation through NODE_OPTIONS, and node honours it there', () => {
    // README "Memory" (docs/performance.md, a replica on PostgreSQL): under load ~130 MB RSS with it, ~150 without.
    for (const [name, service] of replicas) {
      expect(service.environment?.NODE_OPTIONS, name).toBe('--max-semi-space-size=4');
      expect(youngGenerationMb(service.environment?.NODE_OPTIONS), name).toBeLessThanOrEqual(FOUR_MB_SEMI_SPACES_MAX_MB); // two semi-spaces of 4 MB
    }
    expect(youngGenerationMb(undefined)).toBeGreaterThan(2 * FOUR_MB_SEMI_SPACES_MAX_MB); // node's default grows past it under the same allocation
  });

  it('builds the repository\'s Dockerfile and runs commands that exist', async () => {
    for (const [, service] of services.filter(([, s]) => s.build)) {
      expect(existsSync(join(resolve(DIR, service.build as string), 'Dockerfile'))).toBe(true);
      expect(resolve(DIR, service.build as string)).toBe(resolve(ROOT));
    }
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^EXPOSE 8080$/m);
    const migrate = compose.services.migrate?.command as string[];
    // The image runs the compiled CLI (the Dockerfile's CMD); its source is src/cli/bin.ts.
    expect(migrate.slice(0, 2)).toEqual(['node', 'dist/cli/bin.js']);
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toContain('CMD ["node", "dist/cli/bin.js", "serve"]');
    expect(existsSync(join(ROOT, (migrate[1] as string).replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')))).toBe(true);
    const help: string[] = [];
    expect(await run(['--help'], { env: {}, out: (t) => help.push(t), err: () => undefined })).toBe(0);
    expect(help.join('\n')).toMatch(new RegExp(`^  ${migrate[2]} `, 'm'));
    expect(loadConfig(Object.fromEntries(Object.entries(compose.services.migrate?.environment ?? {}).map(([k, v]) => [k, substitute(String(v))])), { requireUpstream: false }).databaseUrl).toMatch(/^postgres:\/\/mcp_owner:/);
  });

  it('mounts files that exist, and the Caddyfile balances round robin over exactly its replicas', () => {
    for (const [, service] of services) {
      for (const volume of service.volumes ?? []) {
        if (volume.startsWith('./')) expect(existsSync(join(DIR, volume.split(':')[0] as string)), volume).toBe(true);
      }
    }
    const caddyfile = readFileSync(join(DIR, 'Caddyfile'), 'utf8');
    const proxies = caddyDirectives(caddyfile).filter((d) => d.tokens[0] === 'reverse_proxy');
    expect(proxies.map((d) => d.depth)).toEqual([1]); // one, in the site block
    const targets = proxies[0]?.tokens.slice(1);
    expect(targets?.sort()).toEqual(replicas.map(([name]) => `${name}:8080`).sort());
    expect(caddyfile).toMatch(/^\s*lb_policy round_robin$/m);
    for (const [, service] of replicas) expect(service.expose).toEqual(['8080']);
  });

  it('sizes connections as replicas × (DATABASE_POOL_MAX + the lock pool), below max_connections', () => {
    const header = text.split('\n').filter((l) => l.startsWith('#')).join(' ').replace(/#\s*/g, '');
    expect(header).toContain(`replicas × (DATABASE_POOL_MAX + ${LOCK_POOL_MAX})`);
    const maxConnections = Number(/max_connections \((\d+) here\)/.exec(header)?.[1]);
    expect(maxConnections).toBe(100); // postgres:17's default; the file does not change it
    expect(compose.services.postgres?.command).toBeUndefined();
    const poolMax = Number(replicas[0]?.[1].environment?.DATABASE_POOL_MAX);
    expect(replicas.length * (poolMax + LOCK_POOL_MAX)).toBeLessThan(maxConnections - 5); // room for migrate and the CLI
  });

  it('requires METRICS_TOKEN of every replica: compose refuses to start without it (an empty one would leave /metrics open)', () => {
    for (const [name, service] of replicas) {
      const value = String(service.environment?.METRICS_TOKEN);
      expect(value, name).toMatch(/^\$\{\w+:\?[^}]+\}$/);
      const env = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, substitute(String(v))]));
      const config = loadConfig({ ...env, NODE_ENV: 'production', HOST: '0.0.0.0' });
      expect(config.metricsToken, name).toBe(SAMPLE.PROXY_METRICS_TOKEN);
      expect(config.warnings.filter((w) => w.includes('METRICS_TOKEN')), name).toEqual([]);
    }
  });

  it('both compose files: every proxy that serves gets 30 s to stop (the 10 s drain, then the audit flush); its secrets are required, no sample admin id', () => {
    const single = parse(readFileSync(join(DIR, 'docker-compose.yml'), 'utf8')) as typeof compose & { services: Record<string, { stop_grace_period?: string }> };
    const serving = [...replicas, ...Object.entries(single.services).filter(([, s]) => s.image === 'mcp-consent-proxy')] as [string, { stop_grace_period?: string; environment?: Record<string, string> }][];
    expect(serving.length).toBe(3);
    for (const [name, service] of serving) {
      expect(service.stop_grace_period, name).toBe('30s');
      expect(String(service.environment?.SECRET_KEY), name).toMatch(/^\$\{PROXY_SECRET_KEY:\?[^}]+\}$/);
    }
    // (review 2026-12-08: a literal id, a real GitHub account's, copied as is would open /admin to it)
    expect(String(single.services['mcp-consent-proxy']?.environment?.ADMIN_SUBJECTS)).toMatch(/^\$\{ADMIN_SUBJECTS:\?[^}]+\}$/);
  });

  it('Caddy answers /metrics itself (404) on every path a replica serves it on, and forwards the proxy\'s other paths', async () => {
    const caddyfile = readFileSync(join(DIR, 'Caddyfile'), 'utf8');
    const directives = caddyDirectives(caddyfile);
    // Caddy runs `respond` before `reverse_proxy` in its standard directive order; handle, route
    // (sorted before respond) or an `order` option could put reverse_proxy first.
    for (const reorders of ['handle', 'handle_path', 'route', 'invoke', 'order']) expect(directives.map((d) => d.tokens[0])).not.toContain(reorders);
    const site = directives.filter((d) => d.depth === 1);
    const refused: string[] = [];
    for (const { tokens } of site.filter((d) => d.tokens[0] === 'respond')) {
      const status = Number(tokens.find((t) => /^\d{3}$/.test(t)));
      const matcher = tokens[1] as string;
      // `respond @name …` with `@name path …` on one line, or `respond /path …`
      const named = matcher.startsWith('@') ? site.find((d) => d.tokens[0] === matcher) : undefined;
      if (named) expect(named.tokens[1], matcher).toBe('path');
      const patterns = named ? named.tokens.slice(2) : matcher.startsWith('/') ? [matcher] : [];
      for (const p of patterns) expect(p.slice(0, -1), p).not.toContain('*'); // only the forms caddyPathMatches knows
      if (status >= 400 && status < 500) refused.push(...patterns);
    }

    // Which paths does a replica answer with its metrics? Probed on the real app (the token the
    // compose file gives it), with the request path sent as is.
    const env = compose.services['replica-1']?.environment ?? {};
    const token = substitute(String(env.METRICS_TOKEN));
    const app = await startTestApp({ env: { METRICS_TOKEN: token } });
    try {
      const auth = { authorization: `Bearer ${token}` };
      expect((await rawGet(app.url, '/metrics')).status).toBe(401); // the token is required
      const candidates = ['/metrics', '/metrics/', '/METRICS', '/Metrics/', '/metrics?x=1', '//metrics', '/metrics//', '/./metrics', '/x/../metrics', '/metrics/.', '/%6Detrics', '/%6detrics/', '/metrics%2F', '/metrics.', '/metrics;', '/metrics/x'];
      const served: string[] = [];
      for (const path of candidates) {
        const res = await rawGet(app.url, path, auth);
        if (res.status === 200 && res.body.includes('mcp_proxy_http_requests_total')) served.push(path);
      }
      expect(served).toEqual(expect.arrayContaining(['/metrics', '/metrics/', '/METRICS']));
      for (const path of served) expect(caddyPathMatches(refused, path.split('?')[0] as string), `Caddy forwards ${path}`).toBe(true);
    } finally {
      await app.close();
    }
    for (const path of ['/healthz', '/readyz', '/mcp', '/authorize', '/token', '/.well-known/oauth-authorization-server', '/metricsfoo']) {
      expect(caddyPathMatches(refused, path), path).toBe(false);
    }
  });

  it('README shows grants.sql as it is', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const statements = readFileSync(join(DIR, 'grants.sql'), 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('--'));
    expect(statements.length).toBeGreaterThan(3);
    // (indented there, inside a list item)
    expect(readme.split('\n').map((l) => l.trim()).join('\n')).toContain(statements.join('\n'));
    expect(readme).toContain('docs/compose/replicas.yml');
  });
});
