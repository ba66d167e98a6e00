/**
 * The checkpoint writer's temp files (DESIGN §9: `audit-checkpoint.json` is written atomically, a
 * temp file renamed over it). A process killed between the write and the rename leaves its temp
 * file behind; without a sweep every crash adds one to the data directory for good (the crash
 * suite, test/crash, counted 6 after 20 kills). Names: `<checkpoint>.<pid>.<writer>-<n>.tmp`.
 * A writer starting up removes the temp files of writers that are gone: those of a pid that no
 * longer runs, and those under this process's own pid that no writer of this process made (an
 * earlier process that had the same pid: PID 1 in a container). Temp files of live writers — the
 * CLI next to the server, another writer in this process — are left alone.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The writers of this process (their tags). */
const WRITERS = new Set<string>();

/** A tag for a new writer of this process, distinct from every other writer's. */
export function newWriterTag(): string {
  const tag = randomBytes(4).toString('hex');
  WRITERS.add(tag);
  return tag;
}

/** The `n`th temp file of writer `tag` in this process. */
export function tempPath(path: string, tag: string, n: number): string {
  return `${path}.${process.pid}.${tag}-${n}.tmp`;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // it exists, under another user
  }
}

/** Remove the temp files of writers that are gone (see the module comment); returns how many. */
export function removeStaleTemps(path: string): number {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0; // no data directory yet: nothing left over
  }
  let removed = 0;
  for (const name of names) {
    const match = name.startsWith(prefix) ? /^(\d+)\.([0-9a-z]+)(?:-\d+)?\.tmp$/.exec(name.slice(prefix.length)) : null;
    if (!match) continue;
    const pid = Number(match[1]);
    const stale = pid === process.pid ? !WRITERS.has(match[2] as string) : pid > 0 && !running(pid);
    if (!stale) continue;
    rmSync(join(dir, name), { force: true });
    removed += 1;
  }
  return removed;
}
