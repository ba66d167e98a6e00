/**
 * docs/compose/replicas.yml (README "Running several replicas") cannot be run here (no Docker, no
 * network), so it is checked statically: every setting it gives the proxy is a real configuration
 * key and, with sample values for its ${VARIABLES}, a valid configuration; the image it builds and
 * the command it runs exist; the files it mounts exist; the Caddyfile balances over exactly its
 * replicas on the port the image listens on; the README shows grants.sql as it is; the one Node
 * option it sets (NODE_OPTIONS) is one node accepts there and honours.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { SCHEMA } from '../../src/config/schema.js';
import { loadConfig } from '../../src/config/load.js';
import { run } from '../../src/cli/index.js';

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
  GITHUB_CLIENT_ID: 'Iv1.0123456789abcdef',
  GITHUB_CLIENT_SECRET: 'github-client-secret',
};
const substitute = (value: string) => value.replace(/\$\{(\w+)\}/g, (_, name: string) => SAMPLE[name] ?? `\${${name}}`);

describe('docs/compose/replicas.yml', () => {
  it('names only ${VARIABLES} its header documents', () => {
    const used = new Set([...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1] as string));
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
    // README "Memory": a replica on PostgreSQL under load ~130 MB RSS with it, ~150 without.
    const probe = "let k=[];for(let i=0;i<2e6;i++){k.push({i,s:'x'+i});if(k.length>2e4)k=[]}" + "process.stdout.write(String(require('v8').getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size))";
    const newSpace = (nodeOptions: string | undefined) => {
      const r = spawnSync(process.execPath, ['-e', probe], { env: { ...process.env, NODE_OPTIONS: nodeOptions ?? '' }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return Number(r.stdout) / 2 ** 20;
    };
    for (const [name, service] of replicas) {
      expect(service.environment?.NODE_OPTIONS, name).toBe('--max-semi-space-size=4');
      expect(newSpace(service.environment?.NODE_OPTIONS), name).toBeLessThanOrEqual(8); // two semi-spaces of 4 MB
    }
    expect(newSpace(undefined)).toBeGreaterThan(8); // node's default grows past it under the same allocation
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
    const targets = /reverse_proxy ([^{]+)\{/.exec(caddyfile)?.[1]?.trim().split(/\s+/);
    expect(targets?.sort()).toEqual(replicas.map(([name]) => `${name}:8080`).sort());
    expect(caddyfile).toMatch(/^\s*lb_policy round_robin$/m);
    for (const [, service] of replicas) expect(service.expose).toEqual(['8080']);
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
