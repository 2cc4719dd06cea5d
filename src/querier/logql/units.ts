// The literal forms LogQL borrows from Go: durations (time.ParseDuration, plus Prometheus's
// d/w/y as Loki's lexer accepts them), byte sizes (go-humanize ParseBytes, which Loki uses
// for `size > 1KB` and `| unwrap bytes(x)`), and Go string literals (strconv.Unquote).

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

export class UnitError extends Error {}

/**
 * A Go duration ("1h30m", "1.5s", "250ms", "-2m") in milliseconds (fractional below 1 ms).
 * Throws UnitError with Go's message without its "time: " prefix, as Loki reports it.
 */
export function parseDuration(s: string): number {
  const orig = s;
  let neg = false;
  if (s[0] === "-" || s[0] === "+") {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw new UnitError(`invalid duration ${goQuoteSimple(orig)}`);
  let total = 0;
  let i = 0;
  while (i < s.length) {
    const numStart = i;
    while (i < s.length && ((s[i] >= "0" && s[i] <= "9") || s[i] === ".")) i++;
    const num = s.slice(numStart, i);
    if (num === "" || num === "." || num.split(".").length > 2) throw new UnitError(`invalid duration ${goQuoteSimple(orig)}`);
    const unitStart = i;
    while (i < s.length && !(s[i] >= "0" && s[i] <= "9") && s[i] !== ".") i++;
    const unit = s.slice(unitStart, i);
    if (unit === "") throw new UnitError(`missing unit in duration ${goQuoteSimple(orig)}`);
    const mult = DURATION_UNITS[unit];
    if (mult === undefined) throw new UnitError(`unknown unit ${goQuoteSimple(unit)} in duration ${goQuoteSimple(orig)}`);
    total += Number(num) * mult;
  }
  return neg ? -total : total;
}

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  ki: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  mi: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
  gi: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  tib: 1024 ** 4,
  ti: 1024 ** 4,
  p: 1e15,
  pb: 1e15,
  pib: 1024 ** 5,
  pi: 1024 ** 5,
  e: 1e18,
  eb: 1e18,
  eib: 1024 ** 6,
  ei: 1024 ** 6,
};

/** go-humanize ParseBytes: "42", "1KB" (1000), "1KiB" (1024), "5.5 MB"; case-insensitive units. */
export function parseBytes(s: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+|[0-9]+\.)\s*([A-Za-z]*)\s*$/.exec(s.replace(/,/g, ""));
  if (!m) throw new UnitError(`strconv.ParseFloat: parsing ${goQuoteSimple(s)}: invalid syntax`);
  const mult = BYTE_UNITS[m[2].toLowerCase()];
  if (mult === undefined) throw new UnitError(`unhandled size name: ${m[2].toLowerCase()}`);
  return Number(m[1]) * mult;
}

/** strconv.ParseFloat as label filters and `unwrap` use it: decimal, hex, exponents, Inf/NaN. */
export function parseGoFloat(s: string): number | null {
  if (s === "") return null;
  const t = s.replace(/_/g, "");
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return Number(t);
  if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(t)) return t[0] === "-" ? -Number(t.slice(1)) : Number(t.replace("+", ""));
  const l = t.toLowerCase();
  if (l === "inf" || l === "+inf" || l === "infinity" || l === "+infinity") return Infinity;
  if (l === "-inf" || l === "-infinity") return -Infinity;
  if (l === "nan") return NaN;
  return null;
}

function goQuoteSimple(s: string): string {
  return JSON.stringify(s);
}

/**
 * strconv.Unquote for the literals LogQL allows: "..." with Go escapes, or `raw`.
 * Returns null when the literal is malformed.
 */
export function goUnquote(lit: string): string | null {
  if (lit.length < 2) return null;
  const q = lit[0];
  if (q === "`") return lit[lit.length - 1] === "`" ? lit.slice(1, -1).replace(/\r/g, "") : null;
  if (q !== '"' || lit[lit.length - 1] !== '"') return null;
  const body = lit.slice(1, -1);
  if (!body.includes("\\")) return body.includes('"') || body.includes("\n") ? null : body;
  let out = "";
  const bytes: number[] = [];
  const flush = () => {
    if (bytes.length > 0) {
      out += new TextDecoder().decode(new Uint8Array(bytes));
      bytes.length = 0;
    }
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== "\\") {
      if (c === '"' || c === "\n") return null;
      flush();
      out += c;
      continue;
    }
    const d = body[++i];
    const simple: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", '"': '"' };
    if (d !== undefined && simple[d] !== undefined) {
      flush();
      out += simple[d];
    } else if (d === "x" && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      bytes.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (d >= "0" && d <= "7" && /^[0-7]{3}$/.test(body.slice(i, i + 3))) {
      const v = parseInt(body.slice(i, i + 3), 8);
      if (v > 255) return null;
      bytes.push(v);
      i += 2;
    } else if (d === "u" && /^[0-9a-fA-F]{4}$/.test(body.slice(i + 1, i + 5))) {
      flush();
      out += String.fromCodePoint(parseInt(body.slice(i + 1, i + 5), 16));
      i += 4;
    } else if (d === "U" && /^[0-9a-fA-F]{8}$/.test(body.slice(i + 1, i + 9))) {
      const cp = parseInt(body.slice(i + 1, i + 9), 16);
      if (cp > 0x10ffff) return null;
      flush();
      out += String.fromCodePoint(cp);
      i += 8;
    } else {
      return null;
    }
  }
  flush();
  return out;
}
