/**
 * `mcp-consent-proxy serve` with a TEST-ONLY stats channel (the soak, test/soak): the same
 * command as src/cli/bin.ts, plus a second HTTP listener on 127.0.0.1:TEST_STATS_PORT that
 * answers this process's figures — like test/bench/cpu-stats.ts, and never part of the product
 * (src/ has no such endpoint):
 *   rss, heapUsed (as found) and heapAfterGc (after a full GC, when node runs with --expose-gc),
 *   fds (open file descriptors, /proc/self/fd), sockets (those of them that are sockets),
 *   checkpointTemps / checkpointTempFiles (those that are the audit checkpoint writer's temp file,
 *   written and renamed after each group commit: how many, and their names), files ("<fd> <target>"
 *   of the non-sockets, to name what stays open),
 *   eldP99Ms / eldMaxMs / eldMeanMs (event-loop delay over the window since the last sample,
 *   perf_hooks.monitorEventLoopDelay: its histogram holds whole timer intervals, so the
 *   resolution is subtracted — what is left is how late the loop was), cpuUs (user + system).
 * The forced GC runs after the delay is read, and its pause is dropped from the next window.
 * `GET /heapsnapshot?to=<file>` writes a V8 heap snapshot there (to find what grows).
 */
import { createServer } from 'node:http';
import { writeHeapSnapshot } from 'node:v8';
import { readdirSync, readlinkSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { run } from '../../src/cli/index.js';
import { CHECKPOINT_TEMP } from '../soak/verdict.js';

const RESOLUTION_MS = 10;
const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
delay.enable();

function descriptors(): { fds: number; sockets: number; checkpointTemps: number; checkpointTempFiles: string[]; files: string[] } {
  let fds = 0;
  let sockets = 0;
  const checkpointTempFiles: string[] = [];
  const files: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    fds += 1;
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith('socket:')) sockets += 1;
      else files.push(`${fd} ${target}`);
      // The audit checkpoint writer's temp file (written, then renamed over the checkpoint after a
      // group commit — one at a time per writer): open between two samples by design.
      if (CHECKPOINT_TEMP.test(target)) checkpointTempFiles.push(target);
    } catch {
      // the descriptor of the directory listing itself, closed by now
    }
  }
  return { fds, sockets, checkpointTemps: checkpointTempFiles.length, checkpointTempFiles, files };
}

function sample(): Record<string, number | string[]> {
  const ms = (ns: number) => Math.max(0, Math.round((ns / 1e6 - RESOLUTION_MS) * 100) / 100);
  const eld = { eldP99Ms: ms(delay.percentile(99)), eldMaxMs: ms(delay.max), eldMeanMs: ms(delay.mean) };
  const before = process.memoryUsage();
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const after = process.memoryUsage();
  delay.reset();
  // The forced GC blocked the loop: its late timer tick belongs to no window.
  setTimeout(() => delay.reset(), RESOLUTION_MS * 3).unref();
  const { user, system } = process.cpuUsage();
  return { rss: after.rss, heapUsed: before.heapUsed, heapAfterGc: gc ? after.heapUsed : Number.NaN, ...descriptors(), ...eld, cpuUs: user + system };
}

const stats = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
  // GET /heapsnapshot?to=<file>: a V8 heap snapshot, to find what grows (test/soak/heap-diff.ts).
  const to = new URL(req.url ?? '/', 'http://stats').searchParams.get('to');
  res.end(JSON.stringify(to ? { file: writeHeapSnapshot(to) } : sample()));
});
stats.unref();
stats.listen(Number(process.env.TEST_STATS_PORT), '127.0.0.1');

process.exitCode = await run(['serve']);
