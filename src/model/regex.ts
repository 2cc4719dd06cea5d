// RE2 (the regexp syntax of Prometheus, Loki and Go) translated into JavaScript
// RegExps, in one place for label matchers and label_replace. Prometheus compiles
// matchers as "^(?s:" + re + ")$": fully anchored, '.' matching newlines.

const POSIX_CLASSES: Record<string, string> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7f",
  blank: "\\t ",
  cntrl: "\\x00-\\x1f\\x7f",
  digit: "0-9",
  graph: "!-~",
  lower: "a-z",
  print: " -~",
  punct: "!-\\/:-@\\[-`{-~",
  space: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

const JS_SYNTAX_CHARS = "^$\\.*+?()[]{}|/";

function hexEscape(ch: string): string {
  const c = ch.codePointAt(0) as number;
  return c < 0x100 ? "\\x" + c.toString(16).padStart(2, "0") : "\\u{" + c.toString(16) + "}";
}

/**
 * Translates the RE2 syntax Prometheus accepts into an equivalent JavaScript pattern (u flag)
 * for the constructs that differ: (?P<name>), leading (?i)/(?m)/(?s) flags, \A \z, \Q...\E,
 * \pL, [[:alpha:]], literal { } ] and escaped punctuation that JS's u mode rejects.
 */
export function translateRE2(src: string): { source: string; flags: string } {
  let flags = "su"; // Prometheus compiles "^(?s:" + re + ")$": '.' matches newlines.
  let i = 0;
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    if (lead[1].includes("i")) flags += "i";
    if (lead[1].includes("m")) flags += "m";
    i = lead[0].length;
  }
  let out = "";
  let inClass = false;
  // Case-insensitivity switched on inside the pattern ((?i:...) or a mid-pattern (?i)),
  // which JavaScript before ES2025 cannot express: letters in its scope become [xX].
  let ci = false;
  const ciStack: boolean[] = [];
  while (i < src.length) {
    const c = src[i];
    if (c === "\\") {
      const d = src[i + 1];
      if (d === undefined) {
        out += "\\"; // Trailing backslash: invalid, let the RegExp constructor say so.
        i++;
      } else if (d === "Q") {
        const endAt = src.indexOf("\\E", i + 2);
        const lit = endAt < 0 ? src.slice(i + 2) : src.slice(i + 2, endAt);
        for (const ch of lit) out += /[0-9A-Za-z_]/.test(ch) ? ch : hexEscape(ch);
        i = endAt < 0 ? src.length : endAt + 2;
      } else if (!inClass && d === "A") {
        out += "(?<![\\s\\S])";
        i += 2;
      } else if (!inClass && d === "z") {
        out += "(?![\\s\\S])";
        i += 2;
      } else if ((d === "p" || d === "P") && /[A-Za-z]/.test(src[i + 2] ?? "")) {
        out += "\\" + d + "{" + src[i + 2] + "}";
        i += 3;
      } else if ((d === "p" || d === "P" || d === "x") && src[i + 2] === "{") {
        // \p{Greek} as is; RE2's \x{263a} is JS's \u{263a}.
        const close = src.indexOf("}", i + 3);
        const body = close < 0 ? src.slice(i + 3) : src.slice(i + 3, close);
        out += "\\" + (d === "x" ? "u" : d) + "{" + body + "}";
        i = close < 0 ? src.length : close + 1;
      } else if (/[0-9A-Za-z]/.test(d)) {
        out += "\\" + d;
        i += 2;
      } else {
        out += JS_SYNTAX_CHARS.includes(d) || (inClass && d === "-") ? "\\" + d : hexEscape(d);
        i += 2;
      }
      continue;
    }
    if (inClass) {
      if (ci && isLetter(c)) {
        const e = src[i + 2];
        if (src[i + 1] === "-" && e !== undefined && isLetter(e) && isUpper(c) === isUpper(e)) {
          out += `${c}-${e}${swapCase(c)}-${swapCase(e)}`;
          i += 3;
        } else {
          out += c + swapCase(c);
          i++;
        }
        continue;
      }
      if (c === "[" && src[i + 1] === ":") {
        const endAt = src.indexOf(":]", i + 2);
        const cls = endAt > 0 ? POSIX_CLASSES[src.slice(i + 2, endAt)] : undefined;
        if (cls !== undefined) {
          out += cls;
          i = endAt + 2;
          continue;
        }
      }
      if (c === "]") inClass = false;
      out += c === "[" ? "\\[" : c;
      i++;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += c;
      i++;
      if (src[i] === "^") {
        out += "^";
        i++;
      }
      if (src[i] === "]") {
        out += "\\]"; // A leading ] is literal in RE2.
        i++;
      }
      continue;
    }
    if (c === "(") {
      const flagsGroup = /^\(\?([imsU]*)(?:-([imsU]*))?([:)])/.exec(src.slice(i));
      if (flagsGroup && (flagsGroup[1] !== "" || flagsGroup[2] !== undefined)) {
        const on = flagsGroup[1].includes("i");
        const off = (flagsGroup[2] ?? "").includes("i");
        if (flagsGroup[3] === ":") {
          ciStack.push(ci);
          if (on) ci = true;
          if (off) ci = false;
          out += "(?:";
        } else {
          // (?i) mid-pattern: on until the enclosing group closes.
          if (on) ci = true;
          if (off) ci = false;
        }
        i += flagsGroup[0].length;
        continue;
      }
      ciStack.push(ci);
      if (src.startsWith("(?P<", i)) {
        out += "(?<";
        i += 4;
      } else {
        out += "(";
        i++;
      }
      continue;
    }
    if (c === ")") {
      ci = ciStack.pop() ?? false;
      out += ")";
      i++;
      continue;
    }
    if (ci && isLetter(c)) {
      out += `[${c}${swapCase(c)}]`;
      i++;
      continue;
    }
    if (c === "{") {
      const rep = /^\{\d+(,\d*)?\}/.exec(src.slice(i));
      if (rep) {
        out += rep[0];
        i += rep[0].length;
      } else {
        out += "\\{"; // Not a repetition: literal in RE2.
        i++;
      }
      continue;
    }
    if (c === "}" || c === "]") {
      out += "\\" + c;
      i++;
      continue;
    }
    out += c;
    i++;
  }
  return { source: out, flags };
}


function isLetter(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z");
}
function isUpper(c: string): boolean {
  return c >= "A" && c <= "Z";
}
function swapCase(c: string): string {
  return isUpper(c) ? c.toLowerCase() : c.toUpperCase();
}

/** A fully anchored RegExp for an RE2 pattern; throws SyntaxError when it does not compile. */
export function anchoredRE2(src: string): RegExp {
  const { source, flags } = translateRE2(src);
  // With (?m), ^ and $ would match at line breaks: anchor with lookarounds instead.
  return flags.includes("m")
    ? new RegExp(`(?<![\\s\\S])(?:${source})(?![\\s\\S])`, flags)
    : new RegExp(`^(?:${source})$`, flags);
}
