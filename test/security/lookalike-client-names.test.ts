/**
 * Finding (issue 9 §5): look-alike names — `Сlaude` (Cyrillic С) and `Cursοr` (Greek ο) got no
 * warning, and invisible and format characters (U+061C, U+3164, tag characters, U+2028/2029,
 * U+180E, U+00AD, stacked combining marks) were accepted in client_name (AT-17, REG-10).
 * Now names are compared on their UTS #39 confusable skeleton, a word mixing scripts is warned
 * about on the consent page, and registration refuses Default_Ignorable, Bidi_Control, format and
 * separator characters and detached or stacked marks — while real names in any script still pass.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, registerClient, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, isConsentPage, startStack, type Stack } from '../helpers/stack.js';
import { lookalikeOf } from '../../src/oauth/lookalike.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

async function register(body: Record<string, unknown>) {
  const res = await fetch(`${stack.app.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:33418/callback'], ...body }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}
const clients = async () => (await rows(stack.app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'Client'"))[0].n as number;

async function consentPageFor(clientName: string, redirectUri: string) {
  const client = await registerClient(stack.app, { client_name: clientName, redirect_uris: [redirectUri] });
  const page = await new Browser().navigate(buildAuthorization(stack.app, { clientId: client.client_id, redirectUri }).url);
  expect(isConsentPage(page)).toBe(true);
  return page.html;
}

describe('look-alike names', () => {
  it.each([
    ['U+061C Arabic letter mark', 'Claude\u061C'],
    ['U+3164 Hangul filler', 'Claude\u3164'],
    ['tag characters', 'Claude\u{E0001}\u{E0041}\u{E007F}'],
    ['U+2028 line separator', 'Claude\u2028Official'],
    ['U+2029 paragraph separator', 'Claude\u2029Official'],
    ['U+180E Mongolian vowel separator', 'Cla\u180Eude'],
    ['U+00AD soft hyphen', 'Cla\u00ADude'],
    ['U+FE0F variation selector', 'Claude\uFE0F'],
    ['U+2066 isolate', '\u2066Claude\u2069'],
    ['a private-use character', 'Claude \uF8FF'],
    ['a leading combining mark', '\u0301Claude'],
    ['a combining mark after a space', 'Claude \u0301'],
    ['zalgo: five stacked marks', 'C\u0301\u0302\u0303\u0304\u0306laude'],
    ['the same mark twice', 'Cla\u0301\u0301ude'],
  ])('refuses a client_name with %s: 400, no client written, audited', async (_label, name) => {
    const before = await clients();
    const res = await register({ client_name: name });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(res.body).not.toHaveProperty('client_id');
    expect(await clients()).toBe(before);
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'registration.rejected', reason: 'invalid_client_metadata:client_name' });
  });

  it.each([['software_id'], ['software_version']])('applies the same rule to %s', async (member) => {
    const res = await register({ client_name: 'Fine', [member]: 'x\u3164y' });
    expect(res).toMatchObject({ status: 400, body: { error: 'invalid_client_metadata' } });
  });

  it.each([
    ['Café', 'Café'],
    ['Cafe\u0301 (decomposed, stored composed)', 'Café'],
    ['Visual Studio Code', 'Visual Studio Code'],
    ['クロード デスクトップ', 'クロード デスクトップ'],
    ['मेरा ऐप', 'मेरा ऐप'],
    ['Việt Nam Notes', 'Việt Nam Notes'],
    ['แอปพลิเคชันของฉัน', 'แอปพลิเคชันของฉัน'],
    ['שָׁלוֹם', 'שָׁלוֹם'],
    ['བསྒྲུབས', 'བསྒྲུབས'],
    ['Claude для команды', 'Claude для команды'],
  ])('accepts the legitimate name %s (stored in NFC)', async (label, stored) => {
    const name = label.replace(' (decomposed, stored composed)', '');
    const res = await register({ client_name: name });
    expect(res.status).toBe(201);
    expect(res.body.client_name).toBe(stored);
    expect(res.body.client_name).toBe(stored.normalize('NFC'));
  });

  it.each([
    ['Сlaude', 'Claude', 'Cyrillic and Latin'],
    ['Cursοr', 'Cursor', 'Greek and Latin'],
  ])('warns on the consent page for %s with a foreign redirect host', async (name, imitates, scripts) => {
    const html = await consentPageFor(name, 'https://evil.example/cb');
    expect(html).toContain(`This is probably not ${imitates}.`);
    expect(html).toContain('sends you to evil.example');
    expect(html).toContain('Its name mixes alphabets.');
    expect(html).toContain(`mixes ${scripts} letters within one word`);
  });

  it('shows no warning for a legitimate name at its own host, nor for a single-script or Japanese name', async () => {
    expect(await consentPageFor('Claude', 'https://claude.ai/api/mcp/auth_callback')).not.toMatch(/probably not|mixes alphabets/);
    expect(await consentPageFor('クロード デスクトップ', 'https://notes.example.com/cb')).not.toMatch(/probably not|mixes alphabets/);
  });

  it.each([
    ['Ｃｌａｕｄｅ', 'Claude'],
    ['𝐂𝐥𝐚𝐮𝐝𝐞', 'Claude'],
    ['C1aude', 'Claude'],
    ['CURSΟR', 'Cursor'],
    ['Gemini Pro', 'Gemini'],
    ['VS Соde', 'Visual Studio Code'],
  ])('matches %j on its confusable skeleton (imitates %s)', (name, imitates) => {
    expect(lookalikeOf(name, ['https://evil.example/cb'])?.imitates).toBe(imitates);
  });

  it('mixes scripts only within a word, and allows Latin with Japanese, Chinese or Korean', () => {
    expect(lookalikeOf('Claudeデスクトップ', ['http://127.0.0.1/cb'])).toBeUndefined();
    expect(lookalikeOf('ChatGPT中文版', ['http://127.0.0.1/cb'])).toBeUndefined();
    expect(lookalikeOf('Claude для команды', ['http://127.0.0.1/cb'])).toBeUndefined();
    expect(lookalikeOf('Nοtes', ['http://127.0.0.1/cb'])?.mixedScripts).toEqual(['Greek', 'Latin']);
  });
});
