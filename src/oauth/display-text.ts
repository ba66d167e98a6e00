/**
 * The displayed-text rule for everything a client asserts about itself and P shows to people
 * (client_name, software_id, software_version, contacts; CIMD documents too): REG-10 / AT-17.
 * The one module that decides which characters such text may contain.
 */

/**
 * REG-10: characters that are invisible, reorder or break the text around them, or render as
 * anything at all: control (Cc), format (Cf), lone surrogate (Cs), private use (Co), line and
 * paragraph separators (Zl, Zp: U+2028/2029), every Default_Ignorable_Code_Point (U+3164 Hangul
 * filler, U+00AD soft hyphen, U+180E, tag characters U+E0000–E007F, variation selectors, joiners)
 * and every Bidi_Control (U+061C, U+200E/F, U+202A–202E, U+2066–2069).
 */
const HIDDEN_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;
/** UTS #39 §5.4: more than four nonspacing marks in a row, or the same one twice in a row (on NFD). */
const STACKED_MARKS = /[\p{Mn}\p{Me}]{5}|([\p{Mn}\p{Me}])\1/u;
/** A combining mark with no base: at the start, or after a space, punctuation or symbol. */
const DETACHED_MARK = /(^|[^\p{L}\p{N}\p{M}])\p{M}/u;

/**
 * The displayed-text rule (REG-10, AT-17): NFC first, then the checks above on the text and on
 * its NFD form (where the mark rules of UTS #39 §5.4 apply). Returns the NFC text to store.
 */
export function checkDisplayText(value: unknown, max: number): { ok: true; text: string } | { ok: false; problem: string } {
  if (typeof value !== 'string') return { ok: false, problem: 'must be a string' };
  const text = value.normalize('NFC');
  if (text.length > max) return { ok: false, problem: `must be at most ${max} characters` };
  if (HIDDEN_OR_CONTROL.test(text)) {
    return { ok: false, problem: 'must not contain control, format, invisible or bidirectional-control characters, or line/paragraph separators' };
  }
  const decomposed = text.normalize('NFD');
  if (DETACHED_MARK.test(decomposed) || STACKED_MARKS.test(decomposed)) {
    return { ok: false, problem: 'must not contain combining marks without a base letter, stacked more than four deep, or repeated' };
  }
  return { ok: true, text };
}
