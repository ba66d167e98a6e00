/**
 * Where a CONFIG_FILE that does not parse goes wrong, described without quoting it: the file holds
 * secrets, and the parsers' own messages quote the text around the error (V8's JSON.parse:
 * `Unexpected token 'g', ..."_SECRET": gho_S3cr3t"...`; yaml: `Invalid escape sequence \q`, an
 * unresolved alias by name, a code frame). Only a line, a column and a generic reason are given.
 */

/** `line L, column C` (both from 1) of a character offset. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}

class Stop {
  constructor(
    readonly at: number,
    readonly reason: string,
  ) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERAL = /true|false|null/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
/** Deeper than this and the scan gives up (JSON.parse itself has refused the file already). */
const MAX_DEPTH = 500;

/** A JSON syntax checker (RFC 8259) that stops at the first error (thrown as a Stop). */
class JsonScanner {
  i = 0;
  constructor(readonly text: string) {}

  fail(): never {
    throw new Stop(this.i, this.i >= this.text.length ? 'unexpected end of file' : 'unexpected character');
  }

  space(): void {
    while (' \t\n\r'.includes(this.text[this.i] ?? 'x')) this.i++;
  }

  token(re: RegExp): void {
    re.lastIndex = this.i;
    if (!re.test(this.text)) this.fail();
    this.i = re.lastIndex;
  }

  char(c: string): void {
    this.space();
    if (this.text[this.i] !== c) this.fail();
    this.i++;
  }

  string(): void {
    const { text } = this;
    this.char('"');
    for (let c = text[this.i]; c !== '"'; c = text[this.i]) {
      if (c === undefined || c < ' ') this.fail(); // the end, or an unescaped control character
      this.i++;
      if (c !== '\\') continue;
      const escape = text[this.i] ?? '';
      if (escape === 'u' ? !HEX4.test(text.slice(this.i + 1, this.i + 5)) : !escape || !'"\\/bfnrt'.includes(escape)) this.fail();
      this.i += escape === 'u' ? 5 : 1;
    }
    this.i++;
  }

  /** An object's members or an array's elements, from the opening bracket to `close`. */
  items(close: string, item: () => void): void {
    this.i++;
    this.space();
    if (this.text[this.i] === close) {
      this.i++;
      return;
    }
    for (;;) {
      item();
      this.space();
      if (this.text[this.i] !== ',') return this.char(close);
      this.i++;
    }
  }

  value(depth: number): void {
    this.space();
    if (depth > MAX_DEPTH) throw new Stop(this.i, 'nested too deeply');
    const c = this.text[this.i];
    if (c === '{') {
      this.items('}', () => {
        this.string();
        this.char(':');
        this.value(depth + 1);
      });
    } else if (c === '[') this.items(']', () => this.value(depth + 1));
    else if (c === '"') this.string();
    else this.token(c === '-' || (c !== undefined && c >= '0' && c <= '9') ? NUMBER : LITERAL);
  }
}

/** The first error of a JSON text: its offset and a generic reason; undefined when there is none. */
function firstJsonError(text: string): Stop | undefined {
  const scanner = new JsonScanner(text);
  try {
    scanner.value(0);
    scanner.space();
    if (scanner.i < text.length) scanner.fail();
    return undefined;
  } catch (err) {
    if (err instanceof Stop) return err;
    throw err;
  }
}

/** `unexpected character at line 3, column 29`, or a reason alone when no position is known. */
export function describeJsonError(text: string): string {
  const stop = firstJsonError(text);
  return stop ? `${stop.reason} at ${lineColumn(text, stop.at)}` : 'syntax error';
}

/** The yaml library's error code and position (YAMLParseError), never its message. */
export function describeYamlError(err: unknown): string {
  const e = err as { code?: unknown; linePos?: { line: number; col: number }[] };
  const code = typeof e.code === 'string' ? e.code : 'syntax error';
  const at = e.linePos?.[0];
  return at ? `${code} at line ${at.line}, column ${at.col}` : code;
}
