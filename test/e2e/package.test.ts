/**
 * The release as an operator gets it (issue 15): `npm pack` (whose `prepare` script compiles
 * src/ to dist/ with tsc), the tarball installed into an empty prefix with its dependencies
 * from the npm registry, and from there the compiled `mcp-consent-proxy`: `--version`,
 * `migrate`, `serve` (the demo: /healthz, then SIGTERM), `audit verify`, and the compiled audit
 * verification worker — with no TypeScript tooling installed. `npx` from the tarball starts the
 * demo exactly as `npm start` does, and `npm start` passes SIGTERM on to the server.
 *
 * Network: only the npm registry (the tarball's dependencies; a private npm cache per run).
 * better-sqlite3's install script finds its native module as a local prebuild made from this
 * checkout's compiled one (prebuild-install's documented `local_prebuilds` setting) instead of
 * compiling it for a minute; when that does not load in the running Node, it compiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/app.js';
import { banner, exitWithin, killAll, runToEnd, startUntil, type Started } from '../helpers/spawned.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string> };
const work = mkdtempSync(join(tmpdir(), 'mcp-release-'));
const prefix = join(work, 'prefix');
const bin = join(prefix, 'node_modules', '.bin', 'mcp-consent-proxy');
const LISTENING = 'MCP Consent Proxy listening';

/** npm's settings for every install here: a private cache, the local prebuild of better-sqlite3. */
function npmEnv(): NodeJS.ProcessEnv {
  return { ...process.env, npm_config_cache: join(work, 'npm-cache'), npm_config_better_sqlite3_local_prebuilds: join(work, 'prebuilds'), npm_config_update_notifier: 'false' };
}

/** prebuild-install's asset name for this Node, holding this checkout's compiled module. */
function localPrebuild(): void {
  const version = JSON.parse(readFileSync(join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8')).version as string;
  const dir = join(work, 'prebuilds');
  execFileSync('mkdir', ['-p', dir]);
  const asset = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  execFileSync('tar', ['czf', join(dir, asset), '-C', join(ROOT, 'node_modules/better-sqlite3'), 'build/Release/better_sqlite3.node']);
}

let tarball: string;
let packed: { filename: string; size: number; files: { path: string }[] };
const timings: Record<string, number> = {};

async function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await work();
  } finally {
    timings[name] = Date.now() - t0;
  }
}

beforeAll(async () => {
  localPrebuild();
  const pack = await timed('npm pack', () => runToEnd('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, env: npmEnv(), timeoutMs: 120_000 }));
  expect(pack.code, pack.stderr).toBe(0);
  // stdout: the build's output (prepare), then npm's JSON
  packed = (JSON.parse(pack.stdout.slice(pack.stdout.indexOf('\n[') + 1)) as (typeof packed)[])[0] as typeof packed;
  tarball = join(work, packed.filename);
  const install = await timed('npm install', () =>
    runToEnd('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: work, env: npmEnv(), timeoutMs: 240_000 }),
  );
  expect(install.code, install.stderr).toBe(0);
}, 360_000);

afterAll(() => {
  killAll();
  console.info(`release test timings (ms): ${JSON.stringify(timings)}; tarball ${packed?.size} bytes`);
});

describe('the packed tarball', () => {
  it('holds the compiled build, views, every migration of both engines, grants.sql and the docs — no sources, tests or TypeScript', () => {
    const paths = packed.files.map((f) => f.path);
    for (const needed of ['package.json', 'README.md', 'SECURITY.md', 'dist/cli/bin.js', 'dist/main.js', 'dist/audit/verify-worker.js', 'views/layout.eta']) expect(paths).toContain(needed);
    // (release review 2026-12-08: only 0001 was checked; doctor's and serve's privilege advice names grants.sql)
    const migrations = ['migrations', 'migrations/postgres'].flatMap((dir) => readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.sql')).map((f) => `${dir}/${f}`));
    expect(migrations.length).toBeGreaterThan(20);
    for (const needed of [...migrations, 'docs/compose/grants.sql']) expect(paths).toContain(needed);
    expect(paths.filter((p) => (/^(src|test|docs|\.ci)\//.test(p) && p !== 'docs/compose/grants.sql') || p.endsWith('.ts'))).toEqual([]);
    expect(packed.size).toBeLessThan(450_000); // README and SECURITY.md are most of it
  });

  it('installs with runtime dependencies only: no tsx, esbuild or TypeScript', () => {
    expect(existsSync(bin)).toBe(true);
    for (const dev of ['tsx', 'esbuild', 'typescript', 'vitest']) expect(existsSync(join(prefix, 'node_modules', dev)), dev).toBe(false);
    for (const dep of Object.keys(PKG.dependencies)) expect(existsSync(join(prefix, 'node_modules', dep)), dep).toBe(true);
  });
});

describe('the installed mcp-consent-proxy', () => {
  const data = join(work, 'data');
  const env = () => ({ PATH: process.env.PATH, DATABASE_PATH: join(data, 'proxy.db') });

  it('--version prints the package version', async () => {
    const result = await runToEnd(bin, ['--version'], { cwd: work, env: env(), timeoutMs: 20_000 });
    expect(result).toMatchObject({ code: 0, stdout: `${PKG.version}\n` });
  });

  it('migrate creates the database', async () => {
    const result = await runToEnd(bin, ['migrate'], { cwd: work, env: env(), timeoutMs: 20_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^applied 0001-oidc-models\.sql, .* to .*proxy\.db\n$/);
  });

  it('serve starts the demo, answers /healthz and stops gracefully on SIGTERM', async () => {
    const port = await freePort();
    const server = await timed('serve start (compiled)', () => startUntil(bin, ['serve'], { cwd: work, env: { ...env(), PORT: String(port) }, waitFor: LISTENING, timeoutMs: 20_000 }));
    expect(server.stdout()).toContain('DEMO MODE');
    const health = await fetch(`http://localhost:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    server.child.kill('SIGTERM');
    expect(await exitWithin(server, 15_000)).toBe(0);
    expect(server.output()).toContain('"msg":"stopped"');
  });

  it('audit verify checks the chain the server wrote', async () => {
    const result = await runToEnd(bin, ['audit', 'verify'], { cwd: work, env: env(), timeoutMs: 20_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^audit log intact: 2 rows, chain verified up to row 2/);
  });

  it('the compiled audit verification worker (the admin page’s) loads and verifies without tsx', async () => {
    const script = join(work, 'verify-in-worker.mjs');
    const dist = join(prefix, 'node_modules', PKG.name, 'dist');
    writeFileSync(
      script,
      [
        `const { verifyChainInWorker } = await import(${JSON.stringify(join(dist, 'audit/verify-async.js'))});`,
        `const { KeyRing } = await import(${JSON.stringify(join(dist, 'crypto/keys.js'))});`,
        `const { resolveSecretKey } = await import(${JSON.stringify(join(dist, 'crypto/secret-file.js'))});`,
        `const keys = new KeyRing(resolveSecretKey(undefined, ${JSON.stringify(data)}).key).auditKeys();`,
        `process.stdout.write(JSON.stringify(await verifyChainInWorker({ path: ${JSON.stringify(join(data, 'proxy.db'))} }, { keys })));`,
      ].join('\n'),
    );
    const result = await runToEnd(process.execPath, [script], { cwd: work, env: env(), timeoutMs: 20_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, rows: 2, tipSeq: 2 });
  });
});

describe('npx and npm start', () => {
  let npmStartBanner: string;

  it('npm start (in the checkout, after the build npm pack ran) passes SIGTERM to the server, which stops gracefully', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(work, 'start-'));
    const server: Started = await timed('npm start', () =>
      startUntil('npm', ['start'], { cwd: ROOT, env: { ...npmEnv(), PORT: String(port), DATABASE_PATH: join(dir, 'db.sqlite') }, waitFor: LISTENING, timeoutMs: 30_000, group: true }),
    );
    expect((await fetch(`http://localhost:${port}/healthz`)).status).toBe(200);
    npmStartBanner = banner(server.stdout(), port);
    process.kill(server.child.pid as number, 'SIGTERM'); // npm itself, not its group
    expect(await exitWithin(server, 15_000)).toBe(0);
    expect(server.output()).toContain('"msg":"stopped"');
    await expect(fetch(`http://localhost:${port}/healthz`)).rejects.toThrow();
  });

  it('npx mcp-consent-proxy from the tarball starts the demo exactly as npm start does', async () => {
    const port = await freePort();
    const cwd = mkdtempSync(join(work, 'npx-'));
    const server = await timed('npx', () =>
      startUntil('npx', ['--yes', `--package=${tarball}`, 'mcp-consent-proxy'], {
        cwd,
        env: { ...npmEnv(), npm_config_prefer_offline: 'true', PORT: String(port), DATABASE_PATH: join(cwd, 'db.sqlite') },
        waitFor: LISTENING,
        timeoutMs: 180_000,
        group: true,
      }),
    );
    expect((await fetch(`http://localhost:${port}/healthz`)).status).toBe(200);
    expect(banner(server.stdout(), port)).toBe(npmStartBanner);
    expect(npmStartBanner).toContain('DEMO MODE');
    // npx runs the command through a shell, which does not pass a signal on: signal the group,
    // as a terminal's Ctrl-C does (README: run a service as `mcp-consent-proxy serve`, not npx).
    process.kill(-(server.child.pid as number), 'SIGINT');
    await exitWithin(server, 15_000);
    expect(server.output()).toContain('"msg":"stopped"');
    await expect(fetch(`http://localhost:${port}/healthz`)).rejects.toThrow();
  });
});
