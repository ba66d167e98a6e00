/**
 * The audit page's filters from a query string (all optional, validated, bounded), and CSV
 * output that spreadsheet programs cannot mistake for formulas.
 */
import { isAuditEvent } from '../audit/events.js';
import { ERRORS } from '../errors/oauth-error.js';
import type { AuditFilter } from '../store/audit-log.js';

export type AuditQuery = Record<string, string | string[] | undefined>;

const str = (v: unknown, max = 200) => (typeof v === 'string' ? v.trim().slice(0, max) : '');

/**
 * `2026-11-22T14:02` (datetime-local, read as UTC) or any ISO time → ISO, else undefined.
 * A time that parses but lies outside the years 0000–9999 (`+275760-09-13T00:00:00Z`) is refused
 * with a 400 (DESIGN §9: no 5xx for bad input): its ISO form has a signed six-digit year, which
 * neither compares as text with the stored `ts` nor survives the ±5 s margin of
 * src/store/audit-range.ts at the edge of the Date range.
 */
export function parseTime(value: string, name = 'time'): string | undefined {
  if (!value) return undefined;
  const withZone = /[zZ]|[+-]\d{2}:?\d{2}$/.test(value) ? value : `${value}Z`;
  const t = Date.parse(withZone);
  if (Number.isNaN(t)) return undefined;
  const iso = new Date(t).toISOString();
  if (!/^\d{4}-/.test(iso)) throw ERRORS.invalidRequest(`${name}: give a time between the years 0000 and 9999`, 'audit_time_out_of_range');
  return iso;
}

export function auditFilterFromQuery(query: AuditQuery): { filter: AuditFilter; form: Record<string, string> } {
  const form = {
    from: str(query.from, 40),
    to: str(query.to, 40),
    event: str(query.event, 60),
    outcome: str(query.outcome, 10),
    subject: str(query.subject),
    client: str(query.client),
    request: str(query.request, 80),
  };
  const filter: AuditFilter = {};
  const from = parseTime(form.from, 'from');
  const to = parseTime(form.to, 'to');
  if (from) filter.from = from;
  if (to) filter.to = to;
  if (form.event && isAuditEvent(form.event)) filter.event = form.event;
  if (['allow', 'deny', 'error', 'info'].includes(form.outcome)) filter.outcome = form.outcome;
  if (form.subject) filter.subject = form.subject;
  if (form.client) filter.clientId = form.client;
  if (form.request) filter.requestId = form.request;
  const before = Number(query.before);
  const after = Number(query.after);
  if (Number.isSafeInteger(before) && before > 0) filter.beforeSeq = before;
  else if (Number.isSafeInteger(after) && after >= 0) filter.afterSeq = after;
  return { filter, form };
}

/** One CSV line (RFC 4180 quoting; cells starting with = + - @ are prefixed with '). */
export function csvLine(values: unknown[]): string {
  return values
    .map((v) => {
      if (v === null || v === undefined) return '';
      let text = String(v);
      if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
      return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    })
    .join(',');
}
