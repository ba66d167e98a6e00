/**
 * A sum per key that forgets keys at zero: what is under way per requester or host
 * (src/cimd/resolve.ts) and the bytes each user holds (src/gateway/read-body.ts). Bounded by the
 * keys with something under way.
 */
export class KeyedTally {
  private readonly sums = new Map<string, number>();

  get(key: string): number {
    return this.sums.get(key) ?? 0;
  }

  add(key: string, n = 1): void {
    this.sums.set(key, this.get(key) + n);
  }

  remove(key: string, n = 1): void {
    const left = this.get(key) - n;
    if (left > 0) this.sums.set(key, left);
    else this.sums.delete(key);
  }
}
