/**
 * vitest globalSetup: every test run gets a temporary directory of its own, and leaves nothing
 * behind in the machine's. It becomes TMPDIR before the test files' processes start (they, and
 * whatever they spawn — `serve`, the CLI, Chromium, PostgreSQL clusters — inherit it, and
 * `os.tmpdir()` reads it), and is removed when the run ends, with whatever a test or a killed
 * child process did not clean up (data directories, sockets, browser profiles).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), 'mcp-consent-proxy-tests-'));
  // It stands in for /tmp, so it has /tmp's mode: the tests' own PostgreSQL clusters run as the
  // `postgres` user (runuser) in directories made here (test/helpers/pg-own-cluster.ts).
  chmodSync(dir, 0o1777);
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
}
