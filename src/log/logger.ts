/**
 * One pino logger (style C9). Credentials are redacted by path; request logs carry the path
 * without its query string (codes and states travel in queries). oidc-provider's own console
 * notices are routed into the same JSON stream.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.code',
  '*.code_verifier',
  '*.client_secret',
  '*.state',
  '*.token',
  '*.password',
  'access_token',
  'refresh_token',
  'id_token',
  'code',
  'code_verifier',
  'client_secret',
  'state',
  'token',
];

/** JSON lines; in an interactive terminal, pretty-printed (pino-pretty). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const target =
    destination ?? (process.stdout.isTTY ? pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } }) : undefined);
  return pino(
    {
      level,
      base: { service: 'mcp-consent-proxy' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    target,
  );
}

let bridged = false;
/** Send oidc-provider's console.info/console.warn notices through the logger. */
export function bridgeProviderConsole(log: Logger): void {
  if (bridged) return;
  bridged = true;
  for (const method of ['info', 'warn'] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      const first = typeof args[0] === 'string' ? args[0] : '';
      if (first.includes('oidc-provider')) {
        // eslint-disable-next-line no-control-regex
        const message = first.replace(/\x1b\[[0-9;]*m/g, '');
        // Expected: the registration admission policy parses /register bodies before the provider.
        const level = message.includes('already parsed request body') ? 'debug' : method;
        log[level]({ component: 'oidc-provider' }, message);
        return;
      }
      original(...args);
    };
  }
}
