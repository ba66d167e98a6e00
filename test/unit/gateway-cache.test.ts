import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/db/open.js';
import { createGeneration, createGenerationCache } from '../../src/gateway/cache.js';

describe('gateway › generation cache', () => {
  it('serves a value until any write on this or another connection', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'gen-')), 'g.db');
    const db = openDatabase(path);
    db.exec('CREATE TABLE t (x INTEGER)');
    const cache = createGenerationCache<number>(createGeneration(db), 2);
    let loads = 0;
    const load = () => ++loads;
    expect(cache.get('k', load)).toBe(1);
    expect(cache.get('k', load)).toBe(1);
    db.prepare('INSERT INTO t VALUES (1)').run();
    expect(cache.get('k', load)).toBe(2);
    const other = openDatabase(path);
    other.prepare('INSERT INTO t VALUES (2)').run();
    expect(cache.get('k', load)).toBe(3);
    expect(cache.get('k', load)).toBe(3);
    cache.get('a', load);
    cache.get('b', load); // evicts the oldest ('k')
    expect(cache.get('k', load)).toBe(6);
  });
});
