/**
 * Issue 9 item 5: the gateway's `touched` map (grant id → last last_used_at write) grew without
 * bound, one entry per grant ever used. It is now a throttle that prunes entries older than its
 * interval and never holds more than its maximum (src/gateway/throttle.ts).
 */
import { describe, expect, it } from 'vitest';
import { createTouchThrottle } from '../../src/gateway/throttle.js';

describe("The gateway's touched map is pruned", () => {
  it('lets a key through once per interval', () => {
    const throttle = createTouchThrottle(60_000);
    expect(throttle.due('grant-1', 1_000)).toBe(true);
    expect(throttle.due('grant-1', 60_999)).toBe(false);
    expect(throttle.due('grant-2', 30_000)).toBe(true);
    expect(throttle.due('grant-1', 61_000)).toBe(true);
    expect(throttle.due('grant-1', 61_001)).toBe(false);
  });

  it('forgets keys older than the interval: 100,000 grants over a day leave only the last minute\'s', () => {
    const throttle = createTouchThrottle(60_000);
    let now = 0;
    let written = 0;
    for (let i = 0; i < 100_000; i++) {
      now += 864; // 100,000 grants spread over 24 h: about 70 a minute
      if (throttle.due(`grant-${i}`, now)) written += 1;
    }
    expect(written).toBe(100_000);
    expect(throttle.size()).toBeLessThanOrEqual(70);
  });

  it('never holds more than its maximum, even when every key is recent', () => {
    const throttle = createTouchThrottle(60_000, 1_000);
    for (let i = 0; i < 50_000; i++) throttle.due(`grant-${i}`, 5_000);
    expect(throttle.size()).toBe(1_000);
    // The most recent keys are the ones kept: still throttled.
    expect(throttle.due('grant-49999', 5_001)).toBe(false);
    expect(throttle.due('grant-0', 5_001)).toBe(true); // dropped early: one extra write, never a missed one
  });
});
