/**
 * `npx tsx test/soak/heap-diff.ts <before.heapsnapshot> <after.heapsnapshot>`: what grew between
 * two V8 heap snapshots (from the soak's stats channel, GET /heapsnapshot?to=<file>), summed by
 * node type and constructor name — count and self size — largest growth first.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: (string[] | string)[] } };
  nodes: number[];
  strings: string[];
}

function tally(file: string): Map<string, { count: number; size: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0] as string[];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const out = new Map<string, { count: number; size: number }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + typeAt] as number] as string;
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(strings)' : (snap.strings[snap.nodes[i + nameAt] as number] ?? '?').slice(0, 60);
    const key = `${type}:${name}`;
    const entry = out.get(key) ?? { count: 0, size: 0 };
    entry.count += 1;
    entry.size += snap.nodes[i + sizeAt] as number;
    out.set(key, entry);
  }
  return out;
}

/** The `top` largest growths from `beforeFile` to `afterFile`, one line each. */
export function heapDiff(beforeFile: string, afterFile: string, top = 40): string[] {
  const before = tally(beforeFile);
  const after = tally(afterFile);
  const rows = [...after].map(([key, a]) => ({ key, count: a.count - (before.get(key)?.count ?? 0), size: a.size - (before.get(key)?.size ?? 0) }));
  rows.sort((x, y) => y.size - x.size);
  return rows.slice(0, top).map((r) => `${String(r.size).padStart(10)} B  ${String(r.count).padStart(7)}  ${r.key}`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop() as string)) {
  const [beforeFile, afterFile] = process.argv.slice(2);
  if (!beforeFile || !afterFile) {
    console.error('usage: npx tsx test/soak/heap-diff.ts <before.heapsnapshot> <after.heapsnapshot>');
    process.exit(2);
  }
  console.log(heapDiff(beforeFile, afterFile).join('\n'));
}
