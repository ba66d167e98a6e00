/**
 * `serve` sets V8's heap growth factor (src/runtime/heap.ts; issue 11: RSS per replica under load)
 * unless node was started with one of its own, and only when it is about to serve.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEAP_GROWING_PERCENT, tuneHeap } from '../../src/runtime/heap.js';

const tuned = vi.hoisted(() => ({ calls: 0, nodeOptions: undefined as string | undefined }));
vi.mock('../../src/runtime/heap.js', async (original) => {
  const actual = await original<typeof import('../../src/runtime/heap.js')>();
  return {
    ...actual,
    tuneHeap: (on: Parameters<typeof actual.tuneHeap>[0] = {}) => {
      if (!on.set) {
        // serve's call: counted, not applied to the test process
        tuned.calls += 1;
        tuned.nodeOptions = on.nodeOptions;
        return undefined;
      }
      return actual.tuneHeap(on);
    },
  };
});
const { run } = await import('../../src/cli/index.js');

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('tuneHeap', () => {
  it('sets --heap-growing-percent when node was started without a memory policy', () => {
    const set = vi.fn();
    expect(tuneHeap({ execArgv: ['--enable-source-maps'], nodeOptions: '--max-semi-space-size=4', set })).toBe(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
    expect(set).toHaveBeenCalledExactlyOnceWith('--heap-growing-percent=100');
  });

  it.each([
    ['--heap-growing-percent=30'],
    ['--heap_growing_percent=30'],
    ['--heap-growing-percent'],
    ['--heap-growing-percent=0'],
    ['--max-old-space-size=96'],
    ['--max_old_space_size=96'],
    ['--optimize-for-size'],
  ])('keeps the operator’s %s, on the command line or in NODE_OPTIONS', (arg) => {
    const set = vi.fn();
    expect(tuneHeap({ execArgv: ['--max-semi-space-size=4', arg], nodeOptions: '', set })).toBeUndefined();
    expect(tuneHeap({ execArgv: [], nodeOptions: `--max-semi-space-size=4  ${arg}`, set })).toBeUndefined();
    expect(set).not.toHaveBeenCalled();
  });

  it('does not mistake another flag for one of those', () => {
    const set = vi.fn();
    tuneHeap({ execArgv: ['--heap-growing-percentage-of-nothing', '--max-old-space-sizes'], nodeOptions: '--optimize-for-sizes', set });
    expect(set).toHaveBeenCalledOnce();
  });
});

describe('serve', () => {
  const io = (env: Record<string, string>) => ({ env, out: () => undefined, err: () => undefined });

  it('tunes the heap once it has a valid configuration, before it listens, with the NODE_OPTIONS it was given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'heap-'));
    dirs.push(dir);
    // A port in use: serve builds everything, then fails to listen and exits 1.
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const env = {
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_PATH: join(dir, 'p.db'),
        UPSTREAM_PRESET: 'github',
        UPSTREAM_CLIENT_ID: 'proxy',
        UPSTREAM_CLIENT_SECRET: 'upstream-client-secret-value',
        MCP_UPSTREAM_URL: 'http://127.0.0.1:9/mcp',
        LOG_LEVEL: 'silent',
        NODE_OPTIONS: '--max-old-space-size=512',
      };
      expect(await run(['serve'], io(env))).toBe(1);
      expect(tuned.calls).toBe(1);
      expect(tuned.nodeOptions).toBe('--max-old-space-size=512'); // from the environment serve was given
    } finally {
      busy.close();
    }
  });

  it('leaves the heap alone when the configuration is invalid', async () => {
    const before = tuned.calls;
    expect(await run(['serve'], io({ PUBLIC_URL: 'nope' }))).toBe(1);
    expect(tuned.calls).toBe(before);
  });
});
