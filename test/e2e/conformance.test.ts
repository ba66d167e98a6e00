/**
 * The MCP conformance suite's `authorization` command against P (issue 5, interop.md §2, §8.1):
 * it checks our authorization server metadata, then runs one PKCE code grant with no `scope` (our
 * default applies, interop F6) and checks the callback (`state`, `iss`) and the token response
 * (200, JSON, `Cache-Control: no-store`), and reports zero warnings (its one warning used to be the
 * missing Client ID Metadata Document support, issue 12). It prints the authorization URL and waits for its own
 * loopback callback; the fetch driver plays the user through P's consent page and U's login.
 * Pinned at 0.2.0-alpha.12 (the only release with `authorization`); it needs Node 22.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort, registerClient, rows } from '../helpers/app.js';
import { Browser, drive, startStack, type Stack } from '../helpers/stack.js';
import { node22 } from '../helpers/node22.js';

const require = createRequire(import.meta.url);
const conformancePkg = require.resolve('@modelcontextprotocol/conformance/package.json');
const conformanceBin = join(dirname(conformancePkg), (require(conformancePkg) as { bin: { conformance: string } }).bin.conformance);

let stack: Stack;
let out: string;
beforeAll(async () => {
  stack = await startStack();
  out = mkdtempSync(join(tmpdir(), 'mcp-conformance-'));
});
afterAll(async () => {
  rmSync(out, { recursive: true, force: true });
  await stack.close();
});

/** checks.json files the suite wrote under `dir` (one per scenario), flattened. */
function readChecks(dir: string): { id: string; name?: string; status: string; errorMessage?: string }[] {
  const found: { id: string; status: string }[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name === 'checks.json') found.push(...(JSON.parse(readFileSync(path, 'utf8')) as { id: string; status: string }[]));
    }
  };
  walk(dir);
  return found;
}

describe('MCP conformance suite, authorization', () => {
  it('passes the metadata and authorization-code-grant scenarios, driven through consent', async () => {
    const node = await node22();
    const port = await freePort();
    const redirectUri = `http://127.0.0.1:${port}/callback`;
    const client = await registerClient(stack.app, { client_name: 'MCP conformance suite', redirect_uris: [redirectUri] });
    const mcpUrl = `${stack.app.url}/mcp`;

    const child = spawn(node, [conformanceBin, 'authorization', '--url', stack.app.url, '--client-id', client.client_id, '--port', String(port), '--resource', mcpUrl, '-o', out], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', BROWSER: '/bin/true' },
    });
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const printedUrl = new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        // eslint-disable-next-line no-control-regex
        const plain = output.replace(/\u001b\[[0-9;]*m|\u001b\]8;;[^\u0007]*\u0007/g, '');
        const match = /https?:\/\/[^\s'"]*response_type=code[^\s'"]*/.exec(plain);
        if (match) resolve(match[0]);
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      void exited.then((code) => reject(new Error(`conformance exited (${code}) before printing an authorization URL:\n${output}`)));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    try {
      const url = new URL(await printedUrl);
      expect(url.searchParams.get('client_id')).toBe(client.client_id);
      expect(url.searchParams.has('scope')).toBe(false); // the suite sends none; P's default applies
      const result = await drive(new Browser('conformance-user'), url.href, redirectUri, { login: 'conformance' });
      expect(result.seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);
      // The browser lands on the suite's own loopback callback server, which the suite starts only
      // after printing the URL: wait for it to listen (bounded).
      for (let attempt = 0; ; attempt++) {
        try {
          await (await fetch(result.callback)).arrayBuffer();
          break;
        } catch (error) {
          if (attempt >= 50) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      const code = await exited;
      const checks = readChecks(out);
      expect(checks.filter((c) => c.status === 'FAILURE'), output).toEqual([]);
      const status = Object.fromEntries(checks.map((c) => [c.id, c.status]));
      expect(status, output).toMatchObject({ 'authorization-server-metadata': 'SUCCESS', 'authorization-code-grant': 'SUCCESS' });
      // Zero warnings (issue 12): P advertises client_id_metadata_document_supported, which was
      // the suite's one warning before CIMD (authorization-server-metadata-cimd).
      expect(checks.filter((c) => c.status !== 'SUCCESS'), output).toEqual([]);
      expect(status['authorization-server-metadata-cimd'], output).toBe('SUCCESS');
      expect(output).not.toMatch(/WARNING/);
      expect(code, output).toBe(0);
      // The token the suite received is P's, for the MCP resource, for the user who approved.
      // (Portable SQL, src/db/sql.ts: JSON is parsed here, not with json_* in the database.)
      const tokens = (await rows(stack.app, "SELECT payload FROM oidc_models WHERE model = 'AccessToken'")).map((t) => JSON.parse(t.payload)).filter((t) => t.clientId === client.client_id);
      expect(tokens).toMatchObject([{ aud: mcpUrl, accountId: 'conformance', scope: 'mcp:tools' }]);
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  }, 240_000);
});
