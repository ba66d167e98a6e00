/**
 * Start time of the server, compiled (`node dist/main.js`, what `npm start` runs) against the
 * TypeScript sources through tsx (`tsx src/main.ts`, what `npm start` ran before issue 15):
 * from spawn to the first 200 from /healthz, the demo on a fresh data directory each time,
 * stopped with SIGTERM. Runs alternate; prints every sample and the median of each.
 *   npm run build && npm run bench:start [-- <runs per mode, default 10>]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

const ROOT = new URL('../..', import.meta.url).pathname;
const RUNS = Number(process.argv[2] ?? 10);
const MODES: Record<string, string[]> = {
  'dist (node dist/main.js)': [process.execPath, join(ROOT, 'dist/main.js')],
  'tsx (tsx src/main.ts)': [join(ROOT, 'node_modules/.bin/tsx'), join(ROOT, 'src/main.ts')],
};

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function startOnce(command: string[]): Promise<number> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'start-bench-'));
  const t0 = performance.now();
  const child = spawn(command[0] as string, command.slice(1), { cwd: ROOT, env: { PATH: process.env.PATH, PORT: String(port), DATABASE_PATH: join(dir, 'db.sqlite'), LOG_LEVEL: 'warn' }, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let ms = NaN;
  for (let i = 0; i < 3000; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) {
      ms = performance.now() - t0;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(MODES).map((m) => [m, []]));
for (let run = 0; run < RUNS; run++) {
  for (const [mode, command] of Object.entries(MODES)) samples[mode]?.push(await startOnce(command));
}
for (const [mode, xs] of Object.entries(samples)) {
  console.log(`${mode}: median ${median(xs).toFixed(0)} ms over ${xs.length} starts (${xs.map((x) => x.toFixed(0)).join(', ')})`);
}
