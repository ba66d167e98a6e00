/**
 * Request ids are UUID version 7 (RFC 9562 §5.7): unique, and ordered by creation time so the
 * audit_log request_id index grows at its right edge (src/http/request-id.ts).
 */
import { describe, expect, it, vi, afterEach } from 'vitest';
import { newRequestId } from '../../src/http/request-id.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

afterEach(() => {
  vi.useRealTimers();
});

describe('request ids', () => {
  it('are version 7 UUIDs carrying the current millisecond', () => {
    vi.useFakeTimers({ now: Date.parse('2026-11-24T10:00:00.123Z'), toFake: ['Date'] });
    const id = newRequestId();
    expect(id).toMatch(V7);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(Date.parse('2026-11-24T10:00:00.123Z'));
  });

  it('are unique across the random pool refills', () => {
    const ids = new Set(Array.from({ length: 50_000 }, newRequestId));
    expect(ids.size).toBe(50_000);
    for (const id of [...ids].slice(0, 1000)) expect(id).toMatch(V7);
  });

  it('sort by time: an id from a later millisecond sorts after every earlier one', () => {
    vi.useFakeTimers({ now: 1_790_000_000_000, toFake: ['Date'] });
    const earlier = Array.from({ length: 100 }, newRequestId);
    vi.setSystemTime(1_790_000_000_001);
    const later = newRequestId();
    for (const id of earlier) expect(id < later).toBe(true);
  });
});
