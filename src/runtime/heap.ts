/**
 * How far V8 lets the heap grow between full garbage collections, for `serve` (issue 11: RSS per
 * replica ≤ 150 MB under load). After each full GC, V8 sets the next one's trigger at what survived
 * times a factor it picks from the allocation rate — up to 4× when a server allocates fast and
 * collects cheaply, as the proxy does under load. So RSS followed the load, not the data: a real
 * `serve` (SQLite, from dist/, Node 20) under the bench's `/register` load went from 112–116 to
 * 205–219 MB (three runs) while a heap snapshot after GC held 21–22 MB (docs/performance.md, Memory).
 *
 * `--heap-growing-percent=100` fixes that factor at 2: the heap still grows with what the process
 * keeps — no cap, so a larger deployment's caches never end the process — but no longer to 4×
 * that. Measured 2026-12-05/06 on the same load, RSS after it: 176–180 MB (four runs); 30 s later,
 * idle, 118.5 MB against 117.7 with V8's own factor (its memory reducer still shrinks the heap).
 * 50 % gave 167–168 MB but cost the gateway 13–16 µs of CPU per request in
 * `BENCH_ONLY=b,c npm run bench`; 100 % 3–8 µs, within that run's noise.
 *
 * V8 applies this flag over its own modes, including the smaller factors it uses for a capped heap
 * (`--max-old-space-size`) and with `--optimize-for-size`; so when node was started with either of
 * those, or with `--heap-growing-percent` (NODE_OPTIONS accepts only `--max-old-space-size` of the
 * three; `--heap-growing-percent=0` restores V8's own factor), the operator has chosen a memory policy and it is left alone. V8 reads the
 * flag at every heap-limit computation, so setting it at start-up, before serving, takes effect.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 100;

/** node flags that choose a memory policy of their own (see above) */
const OPERATOR_POLICY = /^--(heap[-_]growing[-_]percent|max[-_]old[-_]space[-_]size|optimize[-_]for[-_]size)(=|$)/;

/**
 * Apply HEAP_GROWING_PERCENT unless node was started with a memory policy of its own, on its
 * command line (`execArgv`) or in NODE_OPTIONS (`nodeOptions`: execArgv does not show it; the
 * caller hands it over from the environment it was given — only src/config reads process.env);
 * returns the flag set, if any.
 */
export function tuneHeap(on: { execArgv?: readonly string[]; nodeOptions?: string; set?: (flags: string) => void } = {}): string | undefined {
  const { execArgv = process.execArgv, nodeOptions = '', set = setFlagsFromString } = on;
  if ([...execArgv, ...nodeOptions.split(/\s+/)].some((arg) => OPERATOR_POLICY.test(arg))) return undefined;
  const flag = `--heap-growing-percent=${HEAP_GROWING_PERCENT}`;
  set(flag);
  return flag;
}
