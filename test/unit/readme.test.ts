import { describe, expect, it } from 'vitest';
import { renderConfigReference } from '../../src/config/schema.js';
import { readmeConfigBlock } from '../helpers/config-docs.js';

describe('README', () => {
  it('carries the configuration reference generated from the schema (run npm run docs:config)', () => {
    expect(readmeConfigBlock()).toBe(renderConfigReference());
  });
});
