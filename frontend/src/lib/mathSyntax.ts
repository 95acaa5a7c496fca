// Where formulas are in a text: $…$ and \(…\) inline, $$…$$ and \[…\] display.
//
// Pandoc's rules for single dollars keep prices plain text: the opening $ must be
// followed by a non-space, the closing $ must follow a non-space and must not be
// followed by a digit, so "$5 and $10" is no formula. \$ is a literal dollar.
// A formula counts only once its closing delimiter is there: while an answer
// streams in, an unclosed one is still plain text.
//
// The patterns use named groups so markdown.tsx can put them in its own inline
// pattern, next to code spans (which are matched first when they start first, so
// code is never math).

export const MATH_PATTERNS = [
  // $$…$$: anything but an unescaped dollar in between.
  String.raw`\$\$(?<dd>(?:\\[\s\S]|[^\\$])+?)\$\$`,
  String.raw`\\\[(?<db>[\s\S]+?)\\\]`,
  String.raw`\\\((?<ip>[\s\S]+?)\\\)`,
  // $…$: no space after the opener, none before the closer, no digit (or dollar) after it.
  String.raw`(?<![\\$])\$(?<id>(?![\s$])(?:\\[\s\S]|[^\\$\s]|\s+(?![\s$]))+?)\$(?![\d$])`,
  String.raw`\\(?<esc>\$)`,
].join("|");

/** The named groups of MATH_PATTERNS a match may carry. */
export interface MathGroups {
  dd?: string;
  db?: string;
  ip?: string;
  id?: string;
  esc?: string;
}

export type MathMatch = { kind: "formula"; tex: string; display: boolean } | { kind: "text"; text: string };

/** What a match of MATH_PATTERNS stands for, or null when it matched none of its groups. */
export function mathOf(groups: MathGroups): MathMatch | null {
  if (groups.esc !== undefined) return { kind: "text", text: groups.esc };
  const display = groups.dd ?? groups.db;
  const tex = display ?? groups.ip ?? groups.id;
  if (tex === undefined) return null;
  // Blank "formulas" ($$ $$) are text, as written.
  if (!tex.trim()) return null;
  return { kind: "formula", tex, display: display !== undefined };
}

export type MathSegment = { kind: "text"; text: string } | { kind: "formula"; tex: string; display: boolean; source: string };

/** ``text`` cut into plain text and closed formulas, in order. */
export function splitMath(text: string): MathSegment[] {
  const out: MathSegment[] = [];
  let plain = "";
  let last = 0;
  for (const m of text.matchAll(new RegExp(MATH_PATTERNS, "g"))) {
    const at = m.index ?? 0;
    const math = mathOf((m.groups ?? {}) as MathGroups);
    plain += text.slice(last, at);
    if (math === null) plain += m[0];
    else if (math.kind === "text") plain += math.text;
    else {
      if (plain) out.push({ kind: "text", text: plain });
      plain = "";
      out.push({ ...math, source: m[0] });
    }
    last = at + m[0].length;
  }
  plain += text.slice(last);
  if (plain) out.push({ kind: "text", text: plain });
  return out;
}

/** Whether ``text`` may hold a formula (closed or not): a reason to fetch the renderer early. */
export function mayHoldMath(text: string): boolean {
  return /\$|\\[([]/.test(text);
}

// A display formula on lines of its own: "$$" or "\[" starts a line (after up to three spaces).
const DISPLAY_OPEN = /^\s{0,3}(\$\$|\\\[)/;
const CLOSER: Record<string, string> = { $$: "$$", "\\[": "\\]" };

export interface DisplayBlock {
  /** The formula, without its delimiters; empty while still open. */
  tex: string;
  /** The lines as written, delimiters included. */
  source: string;
  /** Still waiting for its closing delimiter (the text ends first). */
  open: boolean;
  /** Index of its last line. */
  end: number;
  /** Text after the closing delimiter on its line, if any. */
  rest: string;
}

/**
 * The display formula that starts at ``lines[start]``, or null when there is none: the
 * line does not start with $$ or \[, or a blank line comes before the closing delimiter
 * (TeX has no blank lines in a formula; the text is then read as text).
 */
export function displayBlockAt(lines: string[], start: number): DisplayBlock | null {
  const first = lines[start] ?? "";
  const opener = DISPLAY_OPEN.exec(first);
  if (!opener) return null;
  const closer = CLOSER[opener[1] as string] as string;
  const body: string[] = [];
  for (let j = start; j < lines.length; j++) {
    const line = j === start ? first.slice(opener[0].length) : (lines[j] as string);
    if (j > start && !line.trim()) return null;
    const at = line.indexOf(closer);
    if (at >= 0) {
      body.push(line.slice(0, at));
      const tex = body.join("\n");
      if (!tex.trim()) return null;
      const source = [...lines.slice(start, j), (lines[j] as string).slice(0, (j === start ? opener[0].length : 0) + at + closer.length)];
      return { tex, source: source.join("\n"), open: false, end: j, rest: line.slice(at + closer.length).trim() };
    }
    body.push(line);
  }
  return { tex: "", source: lines.slice(start).join("\n"), open: true, end: lines.length - 1, rest: "" };
}
