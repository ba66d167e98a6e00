/**
 * A command that failed exits (README "Exit codes": 1), whatever a library left open. Found by the
 * review of 2026-12-06: with a DATABASE_URL without a password, against a PostgreSQL server that
 * asks for one (SCRAM), pg failed the connection on our side but left its socket open, so a failed
 * `migrate` or `serve` printed its error and then kept running until the server's authentication
 * timeout — a container that should have restarted did not. A stand-in server here speaks just
 * enough of the protocol (it asks for SCRAM-SHA-256, then waits, as PostgreSQL does for a minute).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_ARGS } from '../helpers/cli-bin.js';
import { TEST_SECRET_KEY } from '../helpers/app.js';

/** An authentication request: 'R', its length, the request code, its data. */
function authentication(code: number, data: string): Buffer {
  const head = Buffer.alloc(9);
  head.write('R', 0);
  head.writeInt32BE(8 + Buffer.byteLength(data), 1);
  head.writeInt32BE(code, 5);
  return Buffer.concat([head, Buffer.from(data)]);
}

const children: ChildProcess[] = [];
const sockets: Socket[] = [];
const server = createServer((socket) => {
  sockets.push(socket);
  let messages = 0;
  socket.on('data', (data) => {
    messages += 1;
    // 1: the StartupMessage → AuthenticationSASL (10) offering SCRAM-SHA-256;
    if (messages === 1) socket.write(authentication(10, 'SCRAM-SHA-256\0\0'));
    // 2: SASLInitialResponse (client-first-message, its nonce after "r=") → AuthenticationSASLContinue
    // (11) with a server-first-message; the client needs its password to answer that. Then silence.
    else if (messages === 2) socket.write(authentication(11, `r=${/r=([^,\0]+)/.exec(data.toString('latin1'))?.[1] ?? ''}server,s=${Buffer.from('salt').toString('base64')},i=4096`));
  });
  socket.on('error', () => undefined);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as { port: number }).port;
afterAll(async () => {
  children.forEach((c) => c.kill('SIGKILL'));
  sockets.forEach((s) => s.destroy());
  await new Promise((r) => server.close(r));
});

/** Run the CLI; its exit code and output, or 'still running' after `ms`. */
function runCli(args: string[], env: Record<string, string>, ms: number): Promise<{ code: number | null | 'still running'; output: string }> {
  const child = spawn(process.execPath, [...CLI_ARGS, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ code: 'still running', output }), ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('cli › exits when a command fails', () => {
  it('migrate and serve with no password for a server that asks for one: exit 1 with a sentence, connection closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-exit-'));
    const env = {
      DATABASE_URL: `postgres://proxy@127.0.0.1:${port}/proxy`,
      SECRET_KEY: TEST_SECRET_KEY,
      DATABASE_PATH: join(dir, 'proxy.db'),
      PUBLIC_URL: 'http://127.0.0.1:9',
      UPSTREAM_ISSUER: 'https://idp.example.com',
      UPSTREAM_CLIENT_ID: 'proxy',
      UPSTREAM_CLIENT_SECRET: 'upstream-client-secret-value',
      MCP_UPSTREAM_URL: 'http://127.0.0.1:9/mcp',
    };
    for (const command of ['migrate', 'serve']) {
      const before = sockets.length;
      const { code, output } = await runCli([command], env, 20_000);
      expect(code, output).toBe(1);
      expect(output).toContain(`${command} failed: the PostgreSQL server asks for a password and DATABASE_URL has none`);
      expect(sockets.length, 'the stand-in was asked (the failure came from its SCRAM request)').toBeGreaterThan(before);
      // The process is gone, so is its end of every connection it opened.
      for (const socket of sockets.slice(before)) {
        if (!socket.closed) await new Promise((r) => socket.once('close', r));
        expect(socket.closed).toBe(true);
      }
    }
  }, 60_000);
});
