// A small Markdown renderer for tutor answers, safe by construction: it builds React
// elements (never HTML strings), so model output cannot inject markup or script.
// It renders partial input sensibly, as answers arrive token by token: an unclosed
// code fence is a code block still being written.
//
// Blocks: paragraphs, headings, bullet and numbered lists, block quotes, fenced
// code, rules. Inline: `code`, **bold**, *italic* / _italic_, [links](https://...),
// and $math$ shown as code-styled text.

import { Fragment, type ReactNode } from "react";

type Block =
  | { kind: "p"; text: string }
  | { kind: "h"; level: number; text: string }
  | { kind: "ul" | "ol"; items: string[]; start: number }
  | { kind: "quote"; text: string }
  | { kind: "code"; lang: string; text: string; open: boolean }
  | { kind: "hr" };

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

const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*]+?)\*\*|__([^_]+?)__|\*([^*\s][^*]*?)\*|(?<![\w])_([^_\s][^_]*?)_(?![\w])|\[([^\]]+)\]\(([^)\s]+)\)|\$([^$\n]+?)\$/g;

function safeHref(href: string): string | null {
  return /^(https?:|mailto:)/i.test(href) ? href : null;
}

export function renderInline(text: string, keyPrefix = "i"): ReactNode[] {
  const out: ReactNode[] = [];
  let last = 0;
  let n = 0;
  for (const m of text.matchAll(INLINE)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    const key = `${keyPrefix}-${n++}`;
    if (m[2] !== undefined) out.push(<code key={key} className="md-code">{m[2]}</code>);
    else if (m[3] !== undefined || m[4] !== undefined)
      out.push(<strong key={key}>{renderInline(m[3] ?? m[4] ?? "", key)}</strong>);
    else if (m[5] !== undefined || m[6] !== undefined)
      out.push(<em key={key}>{renderInline(m[5] ?? m[6] ?? "", key)}</em>);
    else if (m[7] !== undefined) {
      const href = safeHref(m[8] ?? "");
      out.push(
        href ? (
          <a key={key} href={href} target="_blank" rel="noopener noreferrer" className="underline text-blue-800">
            {renderInline(m[7], key)}
          </a>
        ) : (
          <Fragment key={key}>{m[7]}</Fragment>
        ),
      );
    } else if (m[9] !== undefined) out.push(<code key={key} className="md-math">{m[9]}</code>);
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function withBreaks(text: string, key: string): ReactNode[] {
  const lines = text.split("\n");
  return lines.flatMap((line, i) => {
    const nodes = renderInline(line, `${key}-${i}`);
    return i < lines.length - 1 ? [...nodes, <br key={`${key}-br-${i}`} />] : nodes;
  });
}

export function Markdown({ text }: { text: string }): ReactNode {
  const blocks = parseBlocks(text);
  return (
    <div className="md">
      {blocks.map((b, i) => {
        const key = `b${i}`;
        switch (b.kind) {
          case "p":
            return <p key={key}>{withBreaks(b.text, key)}</p>;
          case "h": {
            const Tag = (`h${Math.min(b.level + 2, 6)}`) as "h3" | "h4" | "h5" | "h6";
            return <Tag key={key}>{renderInline(b.text, key)}</Tag>;
          }
          case "ul":
            return (
              <ul key={key}>
                {b.items.map((item, j) => (
                  <li key={j}>{withBreaks(item, `${key}-${j}`)}</li>
                ))}
              </ul>
            );
          case "ol":
            return (
              <ol key={key} start={b.start}>
                {b.items.map((item, j) => (
                  <li key={j}>{withBreaks(item, `${key}-${j}`)}</li>
                ))}
              </ol>
            );
          case "quote":
            return <blockquote key={key}>{withBreaks(b.text, key)}</blockquote>;
          case "code":
            return (
              <pre key={key} className="md-pre" data-lang={b.lang || undefined} aria-busy={b.open || undefined}>
                <code>{b.text}</code>
              </pre>
            );
          case "hr":
            return <hr key={key} />;
        }
        return null;
      })}
    </div>
  );
}
