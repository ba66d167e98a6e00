/**
 * The CLI's logger (src/cli/context.ts `cliLogger`, what `openCliContext` and the storage commands
 * log through): the server's logger — credentials redacted by path, errors by the allow-list — as
 * the CLI runs the same revocation requests to U as the server (review 2026-12-08: it was a bare
 * pino logger with no redaction).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliLogger, openCliContext } from '../../src/cli/context.js';
import { run } from '../../src/cli/index.js';
import { TEST_SECRET_KEY } from '../helpers/app.js';
import { databaseEnv } from '../helpers/engine.js';
import { jsonAnswer, revocationError } from '../helpers/upstream-errors.js';

const MARKER = 'cli-marker-token-0123456789';

async function logLines(log: (destination: { write(line: string): void }) => Promise<void>): Promise<string> {
  const lines: string[] = [];
  await log({ write: (line) => void lines.push(line) });
  return lines.join('\n');
}

describe("the CLI's logger", () => {
  it('redacts credentials by path and logs errors by the allow-list', async () => {
    const err = await revocationError(jsonAnswer(400, { error: 'invalid_request', error_description: `echo ${MARKER}` }));
    const text = await logLines(async (destination) => {
      const log = cliLogger(destination);
      log.warn({ refresh_token: MARKER, nested: { access_token: MARKER } }, 'tokens');
      log.warn({ err }, 'U refused');
      log.info({ refresh_token: MARKER }, 'below warn: not written');
    });
    expect(text).not.toContain(MARKER);
    expect(text).toContain('"refresh_token":"[redacted]"');
    expect(text).toContain('"status":400');
    expect(text).not.toContain('below warn');
  });

  it("is the CLI context's logger", async () => {
    const env = { ...(await databaseEnv(mkdtempSync(join(tmpdir(), 'cli-logger-')))), SECRET_KEY: TEST_SECRET_KEY };
    expect(await run(['migrate'], { env, out: () => undefined, err: () => undefined })).toBe(0);
    const text = await logLines(async (logDestination) => {
      const ctx = await openCliContext(env, { logDestination });
      try {
        ctx.log.warn({ refresh_token: MARKER }, 'from the context');
      } finally {
        await ctx.close();
      }
    });
    expect(text).toContain('from the context');
    expect(text).not.toContain(MARKER);
  });
});
