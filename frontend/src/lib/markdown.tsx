// A small Markdown renderer for tutor answers, safe by construction: it builds React
// elements (never HTML strings), so model output cannot inject markup or script.
// It renders partial input sensibly, as answers arrive token by token: an unclosed
// code fence is a code block still being written, an unclosed formula is plain text.
//
// Blocks: paragraphs, headings, bullet and numbered lists, block quotes, fenced
// code, rules, display formulas ($$ or \[ starting a line). Inline: `code`,
// **bold**, *italic* / _italic_, [links](https://...), formulas ($…$, \(…\),
// $$…$$, \[…\]; mathSyntax.ts has the rules, mathFormula.tsx renders them with
// KaTeX, loaded on demand).
//
// Parts of the text may be marked as kept back (a hint's withheld sentences, whose text
// is the server's neutral replacement): each renders as a "kept back" marker in place,
// inside whatever block holds it.

import { Fragment, type ReactNode } from "react";

import { Formula, useMathFor } from "./mathFormula";
import { KeptBack } from "./keptBack";
import { MATH_PATTERNS, type MathGroups, displayBlockAt, mathOf } from "./mathSyntax";

type Block =
  | { kind: "p"; text: string }
  | { kind: "h"; level: number; text: string }
  | { kind: "ul" | "ol"; items: string[]; start: number }
  | { kind: "quote"; text: string }
  | { kind: "code"; lang: string; text: string; open: boolean }
  | { kind: "hr" }
  | { kind: "math"; tex: string; source: string; open: boolean };

const FENCE = /^\s{0,3}(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*)$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

export function parseBlocks(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let para: string[] = [];
  const flush = () => {
    if (para.length) blocks.push({ kind: "p", text: para.join("\n") });
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1] as string;
      const body: string[] = [];
      let open = true;
      for (i++; i < lines.length; i++) {
        const l = lines[i] as string;
        if (l.trim().startsWith(marker) && l.trim().replace(/[`~]/g, "") === "") {
          open = false;
          break;
        }
        body.push(l);
      }
      blocks.push({ kind: "code", lang: fence[2] ?? "", text: body.join("\n"), open });
      continue;
    }
    if (!line.trim()) {
      flush();
      continue;
    }
    const math = displayBlockAt(lines, i);
    if (math) {
      flush();
      blocks.push({ kind: "math", tex: math.tex, source: math.source, open: math.open });
      i = math.end;
      if (math.rest) para.push(math.rest);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      blocks.push({ kind: "h", level: (heading[1] as string).length, text: heading[2] ?? "" });
      continue;
    }
    if (RULE.test(line) && !para.length) {
      blocks.push({ kind: "hr" });
      continue;
    }
    const bullet = BULLET.exec(line);
    const numbered = NUMBERED.exec(line);
    if (bullet || numbered) {
      flush();
      const kind = bullet ? "ul" : "ol";
      const start = numbered ? Number(numbered[1]) : 1;
      const items: string[] = [];
      for (; i < lines.length; i++) {
        const l = lines[i] as string;
        const m = kind === "ul" ? BULLET.exec(l) : NUMBERED.exec(l);
        if (m) items.push((kind === "ul" ? m[1] : m[2]) ?? "");
        else if (l.trim() && /^\s{2,}/.test(l) && items.length) items[items.length - 1] += `\n${l.trim()}`;
        else break;
      }
      i--;
      blocks.push({ kind, items, start });
      continue;
    }
    const quote = QUOTE.exec(line);
    if (quote) {
      flush();
      const body: string[] = [];
      for (; i < lines.length; i++) {
        const m = QUOTE.exec(lines[i] as string);
        if (!m) break;
        body.push(m[1] ?? "");
      }
      i--;
      blocks.push({ kind: "quote", text: body.join("\n") });
      continue;
    }
    para.push(line);
  }
  flush();
  return blocks;
}

// Code spans first: where a code span and a formula start at the same place, it is code.
const INLINE = new RegExp(
  [
    String.raw`(?<tick>\`+)(?<code>[\s\S]*?[^\`])\k<tick>(?!\`)`,
    String.raw`\*\*(?<strong>[^*]+?)\*\*|__(?<strong2>[^_]+?)__`,
    String.raw`\*(?<em>[^*\s][^*]*?)\*|(?<![\w])_(?<em2>[^_\s][^_]*?)_(?![\w])`,
    String.raw`\[(?<label>[^\]]+)\]\((?<href>[^)\s]+)\)`,
    MATH_PATTERNS,
  ].join("|"),
  "g",
);

interface InlineGroups extends MathGroups {
  code?: string;
  strong?: string;
  strong2?: string;
  em?: string;
  em2?: string;
  label?: string;
  href?: string;
}

function safeHref(href: string): string | null {
  return /^(https?:|mailto:)/i.test(href) ? href : null;
}

// A kept-back part stands in the text as MARK_OPEN, its index, MARK_CLOSE: private-use
// characters that no Markdown rule (and no answer) uses.
const MARK_OPEN = "\uE000";
const MARK_CLOSE = "\uE001";
const MARK = /\uE000(\d+)\uE001/g;

/** Plain text, with any kept-back marks in it as markers. */
function plain(text: string, key: string, marks: readonly string[] | undefined): ReactNode[] {
  if (!marks?.length || !text.includes(MARK_OPEN)) return [text];
  const out: ReactNode[] = [];
  let last = 0;
  for (const m of text.matchAll(MARK)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    const i = Number(m[1]);
    out.push(<KeptBack key={`${key}-k${i}`} text={marks[i] ?? ""} />);
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** `text` with its marks back as the text they stand for (code shows as written). */
function unmark(text: string, marks: readonly string[] | undefined): string {
  return marks?.length ? text.replace(MARK, (_, i: string) => marks[Number(i)] ?? "") : text;
}

/** `text` with each range in `ranges` replaced by a mark, and the marked texts in order. */
export function withMarks(text: string, ranges: readonly { start: number; end: number }[]): { text: string; marks: string[] } {
  const marks: string[] = [];
  let out = "";
  let last = 0;
  for (const r of ranges) {
    if (r.start < last || r.end > text.length || r.end <= r.start) continue;
    out += text.slice(last, r.start) + MARK_OPEN + marks.length + MARK_CLOSE;
    marks.push(text.slice(r.start, r.end));
    last = r.end;
  }
  return { text: out + text.slice(last), marks };
}

export function renderInline(text: string, keyPrefix = "i", marks?: readonly string[]): ReactNode[] {
  const out: ReactNode[] = [];
  let last = 0;
  let n = 0;
  for (const m of text.matchAll(INLINE)) {
    const at = m.index ?? 0;
    if (at > last) out.push(...plain(text.slice(last, at), `${keyPrefix}-t${n}`, marks));
    const key = `${keyPrefix}-${n++}`;
    const g = (m.groups ?? {}) as InlineGroups;
    if (g.code !== undefined) out.push(<code key={key} className="md-code">{unmark(g.code, marks)}</code>);
    else if (g.strong !== undefined || g.strong2 !== undefined)
      out.push(<strong key={key}>{renderInline(g.strong ?? g.strong2 ?? "", key, marks)}</strong>);
    else if (g.em !== undefined || g.em2 !== undefined)
      out.push(<em key={key}>{renderInline(g.em ?? g.em2 ?? "", key, marks)}</em>);
    else if (g.label !== undefined) {
      const href = safeHref(g.href ?? "");
      out.push(
        href ? (
          <a key={key} href={href} target="_blank" rel="noopener noreferrer" className="underline text-blue-800">
            {renderInline(g.label, key)}
          </a>
        ) : (
          <Fragment key={key}>{g.label}</Fragment>
        ),
      );
    } else {
      const math = mathOf(g);
      if (math === null) out.push(m[0]);
      else if (math.kind === "text") out.push(math.text);
      else out.push(<Formula key={key} tex={math.tex} display={math.display} source={m[0]} />);
    }
    last = at + m[0].length;
  }
  if (last < text.length) out.push(...plain(text.slice(last), `${keyPrefix}-t${n}`, marks));
  return out;
}

function withBreaks(text: string, key: string, marks?: readonly string[]): ReactNode[] {
  const lines = text.split("\n");
  return lines.flatMap((line, i) => {
    const nodes = renderInline(line, `${key}-${i}`, marks);
    return i < lines.length - 1 ? [...nodes, <br key={`${key}-br-${i}`} />] : nodes;
  });
}

/** An answer; the parts of `text` in `keptBack` (sorted, apart) show as "kept back" markers. */
export function Markdown({ text, keptBack }: { text: string; keptBack?: readonly { start: number; end: number }[] }): ReactNode {
  useMathFor(text);
  const marked = keptBack?.length ? withMarks(text, keptBack) : null;
  const marks = marked?.marks;
  const blocks = parseBlocks(marked?.text ?? text);
  return (
    <div className="md">
      {blocks.map((b, i) => {
        const key = `b${i}`;
        switch (b.kind) {
          case "p":
            return <p key={key}>{withBreaks(b.text, key, marks)}</p>;
          case "h": {
            const Tag = (`h${Math.min(b.level + 2, 6)}`) as "h3" | "h4" | "h5" | "h6";
            return <Tag key={key}>{renderInline(b.text, key, marks)}</Tag>;
          }
          case "ul":
            return (
              <ul key={key}>
                {b.items.map((item, j) => (
                  <li key={j}>{withBreaks(item, `${key}-${j}`, marks)}</li>
                ))}
              </ul>
            );
          case "ol":
            return (
              <ol key={key} start={b.start}>
                {b.items.map((item, j) => (
                  <li key={j}>{withBreaks(item, `${key}-${j}`, marks)}</li>
                ))}
              </ol>
            );
          case "quote":
            return <blockquote key={key}>{withBreaks(b.text, key, marks)}</blockquote>;
          case "code":
            return (
              <pre key={key} className="md-pre" data-lang={b.lang || undefined} aria-busy={b.open || undefined}>
                <code>{unmark(b.text, marks)}</code>
              </pre>
            );
          case "hr":
            return <hr key={key} />;
          case "math":
            // Still open: the text as written, until its closing delimiter arrives.
            return b.open ? (
              <p key={key} className="md-math-src">
                {b.source}
              </p>
            ) : (
              <div key={key} className="md-math-block">
                <Formula tex={b.tex} display source={b.source} />
              </div>
            );
        }
        return null;
      })}
    </div>
  );
}
