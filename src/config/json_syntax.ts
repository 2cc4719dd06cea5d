// Where a text stops being JSON, without quoting it. V8's JSON.parse messages may
// quote the text ('Unexpected token 'k', "{"key": k..." is not valid JSON'), and
// configuration bodies hold secrets (browser keys in the runtime config, tokens in
// AUTH_CONFIG), so errors name the line and column instead. The scanner follows
// RFC 8259's grammar, as JSON.parse does; it runs only after JSON.parse failed.

/** Thrown inside the scanner with the offset of the first character that cannot continue the JSON text. */
class Stop {
  constructor(readonly at: number) {}
}

/**
 * The offset (UTF-16 units) of the first character that makes `text` invalid JSON;
 * text.length when it ends too early; null when it is valid JSON, or nested too
 * deeply to scan.
 */
export function jsonErrorOffset(text: string): number | null {
  let i = 0;
  const stop = (): never => {
    throw new Stop(i);
  };
  const digit = (c: number) => c >= 0x30 && c <= 0x39;
  const at = () => text.charCodeAt(i); // NaN past the end: matches nothing
  const ws = () => {
    for (let c = at(); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = at()) i++;
  };
  const expect = (c: number) => {
    if (at() !== c) stop();
    i++;
  };
  const string = () => {
    expect(0x22);
    for (;;) {
      const c = at();
      if (c === 0x22) return void i++;
      if (Number.isNaN(c) || c < 0x20) stop();
      i++;
      if (c === 0x5c) {
        const e = at();
        if (e === 0x75) {
          i++;
          for (let k = 0; k < 4; k++) {
            if (!/[0-9a-fA-F]/.test(text[i] ?? "")) stop();
            i++;
          }
        } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) i++;
        else stop();
      }
    }
  };
  const number = () => {
    if (at() === 0x2d) i++;
    if (at() === 0x30) i++;
    else if (digit(at())) while (digit(at())) i++;
    else stop();
    if (at() === 0x2e) {
      i++;
      if (!digit(at())) stop();
      while (digit(at())) i++;
    }
    if (at() === 0x65 || at() === 0x45) {
      i++;
      if (at() === 0x2b || at() === 0x2d) i++;
      if (!digit(at())) stop();
      while (digit(at())) i++;
    }
  };
  const literal = (word: string) => {
    for (let k = 0; k < word.length; k++) expect(word.charCodeAt(k));
  };
  const value = (): void => {
    ws();
    const c = at();
    if (c === 0x7b) {
      i++;
      ws();
      if (at() === 0x7d) return void i++;
      for (;;) {
        ws();
        string();
        ws();
        expect(0x3a);
        value();
        ws();
        if (at() === 0x2c) i++;
        else return expect(0x7d);
      }
    }
    if (c === 0x5b) {
      i++;
      ws();
      if (at() === 0x5d) return void i++;
      for (;;) {
        value();
        ws();
        if (at() === 0x2c) i++;
        else return expect(0x5d);
      }
    }
    if (c === 0x22) return string();
    if (c === 0x2d || digit(c)) return number();
    if (c === 0x74) return literal("true");
    if (c === 0x66) return literal("false");
    if (c === 0x6e) return literal("null");
    stop();
  };
  try {
    value();
    ws();
    return i < text.length ? i : null;
  } catch (e) {
    if (e instanceof Stop) return e.at;
    // Deeper than the stack allows: no position to give.
    if (e instanceof RangeError) return null;
    throw e;
  }
}

/** "unexpected character at line 2, column 7" or "unexpected end at line 3, column 1"; never the text itself. */
export function jsonSyntaxError(text: string): string {
  const offset = jsonErrorOffset(text);
  if (offset === null) return "not parseable (nested too deeply)";
  let line = 1;
  let lineStart = 0;
  for (let k = text.indexOf("\n"); k !== -1 && k < offset; k = text.indexOf("\n", k + 1)) {
    line++;
    lineStart = k + 1;
  }
  return `unexpected ${offset >= text.length ? "end" : "character"} at line ${line}, column ${offset - lineStart + 1}`;
}
