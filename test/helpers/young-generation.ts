/**
 * How large V8's young generation (its new space) grows in a node started with `nodeOptions` in
 * NODE_OPTIONS, under a loop that allocates fast and keeps a little: the figure
 * `--max-semi-space-size` bounds (README "Memory"). Used where a deployment file sets that flag
 * (the Dockerfile, docs/compose/replicas.yml) to show node accepts it there and honours it.
 */
import { spawnSync } from 'node:child_process';

const PROBE =
  "let k=[];for(let i=0;i<2e6;i++){k.push({i,s:'x'+i});if(k.length>2e4)k=[]}" + "process.stdout.write(String(require('v8').getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size))";

/** MB; throws with node's message when node refuses the options. */
export function youngGenerationMb(nodeOptions: string | undefined): number {
  const r = spawnSync(process.execPath, ['-e', PROBE], { env: { ...process.env, NODE_OPTIONS: nodeOptions ?? '' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node refused NODE_OPTIONS=${JSON.stringify(nodeOptions)}: ${r.stderr}`);
  return Number(r.stdout) / 2 ** 20;
}
