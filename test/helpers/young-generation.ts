/**
 * How large V8's young generation (its new space) grows in a node started with `nodeOptions` in
 * NODE_OPTIONS, under a loop that allocates fast and keeps a little: the figure
 * `--max-semi-space-size` bounds (README "Memory"). Used where a deployment file sets that flag
 * (the Dockerfile, docs/compose/replicas.yml) to show node accepts it there and honours it.
 */
import { spawnSync } from 'node:child_process';

const PROBE =
  "let k=[];for(let i=0;i<2e6;i++){k.push({i,s:'x'+i});if(k.length>2e4)k=[]}" + "process.stdout.write(String(require('v8').getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size))";

/**
 * The largest new space, in MB, that `--max-semi-space-size=4` allows as V8 reports it here: two 4 MB
 * semi-spaces, and room for pages V8 holds beyond them while a scavenge is under way (Node 24.22 reported
 * 9 MB on CI's machine on 2026-12-07, 8 MB on this one). Node's default under the same loop is 32 MB or more.
 */
export const FOUR_MB_SEMI_SPACES_MAX_MB = 12;

/** MB; throws with node's message when node refuses the options. */
export function youngGenerationMb(nodeOptions: string | undefined): number {
  const r = spawnSync(process.execPath, ['-e', PROBE], { env: { ...process.env, NODE_OPTIONS: nodeOptions ?? '' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node refused NODE_OPTIONS=${JSON.stringify(nodeOptions)}: ${r.stderr}`);
  return Number(r.stdout) / 2 ** 20;
}
