/**
 * Parsers for the human-friendly values in the configuration: durations ("90d", "10m", "30s")
 * and rate budgets ("30/1m"). Pure functions; they return `undefined` on malformed input so the
 * schema can report every problem at once.
 */

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** "90d" → 7_776_000 seconds. A bare number is seconds. */
export function parseDurationSeconds(text: string): number | undefined {
  const match = /^\s*(\d+)\s*([smhdw]?)\s*$/i.exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = (match[2] || 's').toLowerCase();
  const seconds = value * (UNIT_SECONDS[unit] ?? 1);
  return Number.isSafeInteger(seconds) && seconds > 0 ? seconds : undefined;
}

export interface RateBudget {
  /** requests allowed per window */
  limit: number;
  /** window length in milliseconds */
  windowMs: number;
}

/** "30/1m" → 30 requests per 60 000 ms. */
export function parseRateBudget(text: string): RateBudget | undefined {
  const match = /^\s*(\d+)\s*\/\s*(\d*\s*[smhdw]?)\s*$/i.exec(text);
  if (!match) return undefined;
  const limit = Number(match[1]);
  const window = match[2]?.trim() || '1s';
  const seconds = parseDurationSeconds(/^\d/.test(window) ? window : `1${window}`);
  if (!seconds || limit < 1) return undefined;
  return { limit, windowMs: seconds * 1000 };
}

/** "1mb", "64kb", "1024" → bytes. */
export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+)\s*(b|kb|kib|mb|mib)?\s*$/i.exec(text);
  if (!match) return undefined;
  const unit = (match[2] ?? 'b').toLowerCase();
  const factor = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 * 1024 : 1;
  const bytes = Number(match[1]) * factor;
  return bytes > 0 ? bytes : undefined;
}

/** 7_776_000 → "90d", used in messages and docs. */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [
    ['w', 604_800],
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds % size === 0 && seconds >= size) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
