import { describe, expect, it } from 'vitest';
import { formatDuration, parseByteSize, parseDurationSeconds, parseRateBudget } from '../../src/config/duration.js';

describe('config › durations and budgets', () => {
  it.each([
    ['30s', 30], ['10m', 600], ['12h', 43_200], ['90d', 7_776_000], ['2w', 1_209_600], ['45', 45], [' 5M ', 300],
  ])('parses %j', (text, seconds) => expect(parseDurationSeconds(text)).toBe(seconds));
  it.each(['', '0', '-5m', '1y', 'ten minutes', '1.5h'])('refuses %j', (text) => expect(parseDurationSeconds(text)).toBeUndefined());
  it('parses rate budgets', () => {
    expect(parseRateBudget('30/1m')).toEqual({ limit: 30, windowMs: 60_000 });
    expect(parseRateBudget('5/m')).toEqual({ limit: 5, windowMs: 60_000 });
    expect(parseRateBudget('100/10s')).toEqual({ limit: 100, windowMs: 10_000 });
    expect(parseRateBudget('0/1m')).toBeUndefined();
    expect(parseRateBudget('30')).toBeUndefined();
  });
  it('parses sizes and formats durations', () => {
    expect(parseByteSize('4mb')).toBe(4 * 1024 * 1024);
    expect(parseByteSize('512KB')).toBe(512 * 1024);
    expect(parseByteSize('lots')).toBeUndefined();
    expect(formatDuration(7_776_000)).toBe('90d');
    expect(formatDuration(90)).toBe('90s');
  });
});
