import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";

import { Markdown, parseBlocks } from "./markdown";

const html = (text: string) => renderToStaticMarkup(<Markdown text={text} />);

describe("markdown", () => {
  it("renders paragraphs, headings, lists, quotes and rules", () => {
    const out = html("# Title\n\nOne **bold** and *it*.\n\n- a\n- b\n\n2. x\n3. y\n\n> said\n\n---");
    expect(out).toContain("<h3>Title</h3>");
    expect(out).toContain("<strong>bold</strong>");
    expect(out).toContain("<em>it</em>");
    expect(out).toContain("<ul><li>a</li><li>b</li></ul>");
    expect(out).toContain('<ol start="2"><li>x</li><li>y</li></ol>');
    expect(out).toContain("<blockquote>said</blockquote>");
    expect(out).toContain("<hr/>");
  });

  it("renders code blocks and inline code verbatim", () => {
    const out = html("Use `a*b*c` here.\n\n```python\nx = 1 * 2 * 3\n```");
    expect(out).toContain('<code class="md-code">a*b*c</code>');
    expect(out).toContain('data-lang="python"');
    expect(out).toContain("x = 1 * 2 * 3");
  });

  it("treats an unclosed fence as a code block still being written", () => {
    const blocks = parseBlocks("Intro\n\n```js\nconst a = 1;");
    expect(blocks[1]).toEqual({ kind: "code", lang: "js", text: "const a = 1;", open: true });
  });

  it("never produces markup from the text, and links only to http(s) and mailto", () => {
    const out = html('<img src=x onerror="alert(1)"> [ok](https://example.org) [bad](javascript:alert(1))');
    expect(out).not.toContain("<img");
    expect(out).toContain("&lt;img");
    expect(out).toContain('href="https://example.org"');
    expect(out).not.toContain("javascript:");
  });

  it("shows $math$ as code-styled text", () => {
    expect(html("Area $a^2$.")).toContain('<code class="md-math">a^2</code>');
  });
});
