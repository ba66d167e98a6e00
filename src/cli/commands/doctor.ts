/**
 * `mcp-consent-proxy doctor [--json] [--timeout <seconds>]`: checks the configuration and the
 * world around it — PUBLIC_URL, the upstream, the MCP server, the database, the clock, the proxy
 * settings — and prints a checklist with a fix for every failure (src/cli/doctor/). Exit 0 only
 * when no check failed.
 */
import { EXIT_FAILURE, EXIT_OK, UsageError, type Command } from '../command.js';
import { formatReport, runDoctor } from '../doctor/run.js';

/** Each probe gives up after this long unless --timeout says otherwise. */
export const DOCTOR_TIMEOUT_S = 5;

export const DOCTOR_COMMAND: Record<string, Command> = {
  doctor: {
    summary: 'check the configuration, PUBLIC_URL, the upstream, the MCP server, the database and the clock; a fix for every failure',
    usage: 'mcp-consent-proxy doctor [--json] [--timeout <seconds>]',
    options: { json: { type: 'boolean' }, timeout: { type: 'string' } },
    async run({ values }, io) {
      const seconds = values.timeout === undefined ? DOCTOR_TIMEOUT_S : Number(values.timeout);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 120) throw new UsageError(`--timeout must be a number of seconds between 0 and 120 (got "${values.timeout as string}")`);
      const report = await runDoctor(io.env, { timeoutMs: seconds * 1000, now: Date.now });
      io.out(values.json ? JSON.stringify(report) : formatReport(report));
      return report.ok ? EXIT_OK : EXIT_FAILURE;
    },
  },
};
