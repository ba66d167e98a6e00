/**
 * CIMD fetcher — the answer's status line and headers (issue 12, DESIGN §10; CIMD-05). Pure. Used
 * only by src/cimd/fetch.ts, whose module comment states the rules; this module implements its
 * steps 4–6 for the response head:
 * - any 3xx is a refusal, its Location never followed (CIMD §4 "MUST NOT automatically follow
 *   HTTP redirects"); any status but 200 is a refusal (CIMD §4);
 * - `application/json` or `application/<x>+json` (CIMD §4), charset absent or UTF-8 (RFC 8259 §8.1);
 * - no content coding (P asked for `identity`);
 * - a Content-Length above the size limit is refused before any of the body is read (CIMD §6.6).
 */
import { printable } from './connect.js';

/** The refusals this module decides (a subset of CimdFetchReason). */
export type HeadRefusal = 'redirect' | 'bad_status' | 'bad_content_type' | 'bad_response' | 'too_large';

export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

export function firstHeader(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** CIMD §4: application/json or application/<x>+json; charset absent or UTF-8 (RFC 8259 §8.1). */
function jsonContentType(value: string | string[] | undefined): { ok: true } | { ok: false; detail: string } {
  if (value === undefined) return { ok: false, detail: 'no Content-Type' };
  if (Array.isArray(value)) return { ok: false, detail: 'more than one Content-Type' };
  const [type, ...params] = value.split(';');
  const media = (type as string).trim().toLowerCase();
  if (media !== 'application/json' && !/^application\/[a-z0-9!#$&^_.+-]+\+json$/.test(media)) {
    return { ok: false, detail: `Content-Type ${printable(value)} is not JSON` };
  }
  for (const param of params) {
    const [name, raw] = param.split('=').map((s) => s.trim());
    if (name?.toLowerCase() === 'charset' && !/^"?utf-?8"?$/i.test(raw ?? '')) {
      return { ok: false, detail: `charset ${printable(raw ?? '')} is not UTF-8` };
    }
  }
  return { ok: true };
}

export type Headers = Record<string, string | string[] | undefined>;

/** Step 5 (status, type, coding) and 6 (declared size): a refusal, or null to read the body. */
export function refuseHead(status: number, headers: Headers, maxBytes: number): { reason: HeadRefusal; detail: string } | null {
  if (status >= 300 && status < 400) return { reason: 'redirect', detail: `HTTP ${status}: redirects are not followed (CIMD §4)` };
  if (status !== 200) return { reason: 'bad_status', detail: `HTTP ${status}: a metadata document must be served with 200 (CIMD §4)` };
  const type = jsonContentType(headers['content-type']);
  if (!type.ok) return { reason: 'bad_content_type', detail: type.detail };
  const coding = header(headers, 'content-encoding');
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') return { reason: 'bad_response', detail: `Content-Encoding ${printable(coding)} was not asked for` };
  const declared = header(headers, 'content-length');
  if (declared !== undefined && Number(declared) > maxBytes) return { reason: 'too_large', detail: `Content-Length ${printable(declared, 20)} exceeds ${maxBytes} bytes` };
  return null;
}
