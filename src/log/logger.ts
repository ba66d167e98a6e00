/**
 * One pino logger (style C9). Credentials are redacted by path; request logs carry the path
 * without its query string (codes and states travel in queries). oidc-provider's own console
 * notices are routed into the same JSON stream.
 * An error under `err` is logged by `serializeError`: its type, message, stack, library code (as
 * `errorCode`: `code` is an authorization code's name, redacted) and numeric HTTP status, and its
 * Error causes the same way — nothing else it carries (U's error body in oauth4webapi's `cause`,
 * `error_description`, a body-parser error's raw `body`, a Response, headers).
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

/** How many Error causes (and AggregateError members) deep `serializeError` goes. */
export const MAX_ERROR_DEPTH = 4;

export interface SerializedError {
  type: string;
  message: string;
  stack?: string;
  /** the library's or system's code (ECONNREFUSED, 40P01, SQLITE_BUSY, OAUTH_RESPONSE_BODY_ERROR) */
  errorCode?: string | number;
  /** an HTTP status the error carries (U's answer) */
  status?: number;
  cause?: SerializedError;
  errors?: SerializedError[];
}

const isErrorLike = (value: unknown): value is Error => typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';

/**
 * An error as it is logged (see the header): an allow-list, so a member a library adds is never
 * logged by accident. A value that is not error-like (a message string) is logged as it is.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!isErrorLike(err)) return err;
  const e = err as Error & { code?: unknown; status?: unknown; errors?: unknown };
  const out: SerializedError = { type: typeof e.constructor === 'function' && e.constructor.name ? e.constructor.name : String(e.name), message: e.message };
  if (typeof e.stack === 'string') out.stack = e.stack;
  if (typeof e.code === 'string' || typeof e.code === 'number') out.errorCode = e.code;
  if (typeof e.status === 'number') out.status = e.status;
  if (depth < MAX_ERROR_DEPTH) {
    // An Error only: oauth4webapi's ResponseBodyError has U's JSON body as its `cause`.
    if (e.cause instanceof Error) out.cause = serializeError(e.cause, depth + 1) as SerializedError;
    // An AggregateError's members at the top only: 5 members, each with its causes (not 5^depth stacks).
    if (Array.isArray(e.errors) && depth === 0)
      out.errors = e.errors
        .filter((inner): inner is Error => inner instanceof Error)
        .slice(0, 5)
        .map((inner) => serializeError(inner, depth + 1) as SerializedError);
  }
  return out;
}

/** JSON lines; in an interactive terminal, pretty-printed (pino-pretty). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const target =
    destination ?? (process.stdout.isTTY ? pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } }) : undefined);
  return pino(
    {
      level,
      base: { service: 'mcp-consent-proxy' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
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
