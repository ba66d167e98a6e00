/**
 * AT-17 / REG-10: a self-registered client can call itself "Claude" — or "Сlaude", with a
 * Cyrillic С. The consent page warns (src/flow/4-consent.ts, views/consent.eta):
 * - when the name resembles a well-known MCP client while one of its redirect hosts is not that
 *   client's. Names are compared on their UTS #39 §4 confusable skeleton (confusables.txt through
 *   the `unhomoglyph` package, after NFKD and case folding, so fullwidth, mathematical, Cyrillic
 *   and Greek look-alikes fold to the Latin letters they imitate), plus a few digit swaps
 *   ("C1aude", "Curs0r" fold through confusables.txt already; "Cl4ude" does not). Loopback and
 *   private-use redirects are never "theirs" or "not theirs": the page already says "a program on
 *   this computer" for those.
 * - when one word of the name mixes scripts (UTS #39 §5.1 resolved script set, with
 *   Script_Extensions and the Han/Japanese/Korean augmentation): "Сlaude" is Cyrillic + Latin, and
 *   nobody spells a word that way except to imitate one. Latin mixed with Japanese, Chinese or
 *   Korean is allowed (the "highly restrictive" level of UTS #39 §5.2), and a multilingual name
 *   with one script per word gets no warning.
 * Invisible, format and bidi characters never get this far: registration refuses them
 * (src/oauth/display-text.ts `checkDisplayText`).
 */
import unhomoglyph from 'unhomoglyph';

interface KnownClient {
  name: string;
  /** name fragments that identify it (compared on their skeleton key) */
  marks: string[];
  /** registrable domains its hosted redirect URIs use */
  domains: string[];
}

export const KNOWN_CLIENTS: KnownClient[] = [
  { name: 'Claude', marks: ['claude', 'anthropic'], domains: ['claude.ai', 'claude.com', 'anthropic.com'] },
  { name: 'ChatGPT', marks: ['chatgpt', 'openai'], domains: ['chatgpt.com', 'openai.com'] },
  { name: 'Cursor', marks: ['cursor', 'anysphere'], domains: ['cursor.com', 'cursor.sh', 'anysphere.co'] },
  { name: 'Visual Studio Code', marks: ['vscode', 'visualstudiocode', 'visualstudio'], domains: ['vscode.dev', 'visualstudio.com', 'microsoft.com'] },
  { name: 'GitHub Copilot', marks: ['copilot'], domains: ['github.com', 'githubcopilot.com', 'microsoft.com'] },
  { name: 'Windsurf', marks: ['windsurf', 'codeium'], domains: ['windsurf.com', 'codeium.com'] },
  { name: 'Gemini', marks: ['gemini'], domains: ['google.com', 'gemini.google.com'] },
  { name: 'MCP Inspector', marks: ['mcpinspector', 'modelcontextprotocol'], domains: ['modelcontextprotocol.io'] },
];

/** UTS #39 §4 skeleton: NFD, map every character to its confusables.txt prototype, NFD again. */
export function skeleton(text: string): string {
  return unhomoglyph(text.normalize('NFD')).normalize('NFD');
}

/**
 * The key names are compared on: compatibility-decomposed and lower-cased, skeleton, lower-cased
 * again (prototypes can be capitals: "0" → "O"), common digit/symbol swaps, then letters and
 * digits only (accents, spaces and punctuation dropped).
 */
export function nameKey(name: string): string {
  return skeleton(name.normalize('NFKD').toLowerCase())
    .toLowerCase()
    .replace(/3/g, 'e')
    .replace(/4|@/g, 'a')
    .replace(/5|\$/g, 's')
    .replace(/!/g, 'l')
    .replace(/[^\p{L}\p{N}]/gu, '');
}

const KNOWN_KEYS = KNOWN_CLIENTS.map((k) => ({ client: k, keys: k.marks.map(nameKey) }));

// ── Mixed scripts (UTS #39 §5.1) ──────────────────────────────────────────────────────────────

/** Unicode script names (Script_Extensions values); those this Node's regex engine lacks are skipped. */
const SCRIPT_NAMES = `Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali
Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee
Chorasmian Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan
Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Garay Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi
Gurmukhi Gurung_Khema Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inscriptional_Pahlavi
Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki
Khudawadi Kirat_Rai Lao Latin Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic
Manichaean Marchen Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao
Modi Mongolian Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong
Ogham Ol_Chiki Ol_Onal Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian
Old_Turkic Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang
Runic Samaritan Saurashtra Sharada Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese Sunuwar
Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangsa Tangut Telugu Thaana Thai Tibetan
Tifinagh Tirhuta Todhri Toto Tulu_Tigalari Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square`.split(/\s+/);

const SCRIPTS: { name: string; re: RegExp }[] = SCRIPT_NAMES.flatMap((name) => {
  try {
    return [{ name, re: new RegExp(`\\p{Script_Extensions=${name}}`, 'u') }];
  } catch {
    return []; // a script newer than this runtime's Unicode data
  }
});
const COMMON_OR_INHERITED = /[\p{Script=Common}\p{Script=Inherited}]/u;
/** UTS #39 §5.1 augmentation: Han, Hiragana, Katakana, Hangul and Bopomofo also count as these. */
const AUGMENT: Record<string, string[]> = {
  Han: ['Japanese', 'Korean', 'Han_with_Bopomofo'],
  Hiragana: ['Japanese'],
  Katakana: ['Japanese'],
  Hangul: ['Korean'],
  Bopomofo: ['Han_with_Bopomofo'],
};
const CJK = ['Japanese', 'Korean', 'Han_with_Bopomofo'];
const ANY = null; // Common / Inherited: compatible with every script

const scriptCache = new Map<number, Set<string> | typeof ANY>();
/** The augmented Script_Extensions of one code point (null: Common/Inherited with no extension). */
function scriptsOf(char: string): Set<string> | typeof ANY {
  const cp = char.codePointAt(0) as number;
  const cached = scriptCache.get(cp);
  if (cached !== undefined) return cached;
  const found = new Set(SCRIPTS.filter((s) => s.re.test(char)).map((s) => s.name));
  for (const name of [...found]) for (const extra of AUGMENT[name] ?? []) found.add(extra);
  const result = found.size ? found : COMMON_OR_INHERITED.test(char) ? ANY : new Set(['Unknown']);
  if (scriptCache.size >= 4096) scriptCache.clear(); // bounded: names are short, scripts few
  scriptCache.set(cp, result);
  return result;
}

/** Intersection of the script sets of `chars` (UTS #39 resolved script set); null = unrestricted. */
function resolved(chars: string[]): Set<string> | null {
  let result = null as Set<string> | null;
  for (const char of chars) {
    const scripts = scriptsOf(char);
    if (scripts === ANY) continue;
    result = result === null ? new Set(scripts) : new Set([...result].filter((s) => scripts.has(s)));
  }
  return result;
}

/**
 * The scripts mixed inside one word of `name`, or undefined when every word is single-script
 * (UTS #39 §5.2 "highly restrictive": one script, or Latin with Japanese, Chinese or Korean).
 */
export function mixedScriptsOf(name: string): string[] | undefined {
  const mixed = new Set<string>();
  for (const word of name.normalize('NFC').split(/[^\p{L}\p{M}\p{N}]+/u)) {
    const chars = [...word];
    const all = resolved(chars);
    if (all === null || all.size) continue;
    const nonLatin = resolved(chars.filter((c) => !(scriptsOf(c)?.has('Latin') ?? false)));
    if (nonLatin !== null && CJK.some((s) => nonLatin.has(s))) continue;
    for (const char of chars) {
      const scripts = scriptsOf(char);
      if (scripts === ANY) continue;
      const primary = [...scripts].find((s) => !CJK.includes(s)) as string;
      mixed.add(primary.replace(/_/g, ' '));
    }
  }
  return mixed.size ? [...mixed].sort() : undefined;
}

// ── The warning shown on the consent page ────────────────────────────────────────────────────

function onDomain(host: string, domains: string[]): boolean {
  return domains.some((d) => host === d || host.endsWith(`.${d}`));
}

export interface LookalikeWarning {
  /** the well-known client the name imitates while an https redirect host is not its own */
  imitates?: string;
  foreignHosts: string[];
  /** scripts mixed inside one word of the name */
  mixedScripts?: string[];
}

/**
 * What the consent page should warn about this name, if anything: the well-known client it
 * imitates (when a redirect URI goes to an https host that is not that client's) and the scripts
 * it mixes inside a word.
 */
export function lookalikeOf(clientName: string | undefined, redirectUris: readonly string[]): LookalikeWarning | undefined {
  if (!clientName) return undefined;
  const warning: LookalikeWarning = { foreignHosts: [] };
  const key = nameKey(clientName);
  const known = KNOWN_KEYS.find((k) => k.keys.some((m) => m && key.includes(m)))?.client;
  if (known) {
    const foreignHosts = redirectUris
      .map((u) => URL.parse(u))
      .filter((u): u is URL => u?.protocol === 'https:')
      .map((u) => u.hostname)
      .filter((host) => !onDomain(host, known.domains));
    if (foreignHosts.length) {
      warning.imitates = known.name;
      warning.foreignHosts = [...new Set(foreignHosts)];
    }
  }
  const mixed = mixedScriptsOf(clientName);
  if (mixed) warning.mixedScripts = mixed;
  return warning.imitates || warning.mixedScripts ? warning : undefined;
}
