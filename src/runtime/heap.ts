/**
 * How far V8 lets the heap grow between full garbage collections, for `serve` (issue 11: RSS per
 * replica ≤ 150 MB under load). After each full GC, V8 sets the next one's trigger at what survived
 * times a factor it picks from the allocation rate — up to 4× when a server allocates fast and
 * collects cheaply, as the proxy does under load. So RSS followed the load, not the data: a real
 * `serve` (SQLite, from dist/) under the bench's `/register` load went from 112 to 219 MB while a
 * heap snapshot after GC held 21–22 MB (README, Memory).
 *
 * `--heap-growing-percent=100` fixes that factor at 2: the heap still grows with what the process
 * keeps — no cap, so a larger deployment's caches never end the process — but no longer to 4×
 * that. Measured 2026-12-05 on the same load (real `serve`, 2 × 8 s of `/register` at c=10), RSS
 * after it: 176–177 MB (219 without; 50 % gave 167–168 MB but cost the gateway 13–16 µs of CPU
 * per request in `BENCH_ONLY=b,c npm run bench`, 100 % 3–8 µs, within that run's noise).
 * Where memory is tight, README "Memory" gives the flags that keep it under 150 MB.
 * V8 reads this flag at every heap-limit computation, so setting it at start-up (before serving)
 * takes effect; `node --heap-growing-percent=N` on the command line (NODE_OPTIONS does not accept
 * it) keeps the operator's value (0: V8's own dynamic factor).
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 100;

/** Apply HEAP_GROWING_PERCENT unless node was started with a value of its own; returns the flag set, if any. */
export function tuneHeap(execArgv: readonly string[] = process.execArgv, set: (flags: string) => void = setFlagsFromString): string | undefined {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent(=|$)/.test(arg))) return undefined;
  const flag = `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
  set(flag);
  return flag;
}
