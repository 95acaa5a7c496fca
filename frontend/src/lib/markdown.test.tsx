// @vitest-environment jsdom
import { act } from "react";
import { type Root, createRoot } from "react-dom/client";
import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, beforeAll, describe, expect, it } from "vitest";

import { Markdown, parseBlocks } from "./markdown";
import { MathText, loadMath } from "./mathFormula";

const html = (text: string) => renderToStaticMarkup(<Markdown text={text} />);

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const roots: Root[] = [];

/** Render ``text`` into a real DOM; ``update`` renders a new text in the same place, as streaming does. */
function mount(text: string, as: "answer" | "question" = "answer") {
  const container = document.createElement("div");
  document.body.append(container);
  const root = createRoot(container);
  roots.push(root);
  const update = (next: string) =>
    act(() => root.render(as === "answer" ? <Markdown text={next} /> : <MathText text={next} />));
  update(text);
  return { container, update };
}

const count = (container: Element, selector: string) => container.querySelectorAll(selector).length;

afterEach(() => {
  for (const root of roots.splice(0)) act(() => root.unmount());
  document.body.replaceChildren();
});

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
});

// Runs first: the renderer is fetched on demand, and this file loads it only further down.
describe("formulas before the renderer is loaded", () => {
  it("show their source as plain text", () => {
    const out = html("Area $a^2$ and $$b$$.");
    expect(out).toContain('<span class="md-math-src" data-math="pending">$a^2$</span>');
    expect(out).toContain('<span class="md-math-src" data-math="pending">$$b$$</span>');
    expect(out).not.toContain("katex");
  });
});

describe("formulas", () => {
  beforeAll(async () => {
    await loadMath();
  });

  it("renders $…$, \\(…\\), $$…$$ and \\[…\\] with KaTeX, display ones as blocks", () => {
    const { container } = mount(
      "Inline $a^2$ and \\(b_1\\); display $$c$$ and \\[d\\].\n\n$$\nx = \\frac{-b}{2a}\n$$\n\n\\[\ny\n\\]",
    );
    expect(count(container, ".katex")).toBe(6);
    expect(count(container, ".katex-display")).toBe(4);
    expect(count(container, ".md-math-block .katex-display")).toBe(2);
    // Screen readers get MathML with the TeX as its annotation.
    expect(container.querySelector("annotation")?.textContent).toBe("a^2");
    expect(container.textContent).not.toContain("$");
  });

  it("keeps prices and escaped dollars as text", () => {
    const { container } = mount("It costs $5 and $10, or $3 with the discount. Write \\$x\\$ for a dollar sign.");
    expect(count(container, ".katex")).toBe(0);
    expect(container.textContent).toBe("It costs $5 and $10, or $3 with the discount. Write $x$ for a dollar sign.");
  });

  it("follows Pandoc's rules for single dollars", () => {
    const { container } = mount("$ x$, $x $, $x$5 and $x$.");
    expect(count(container, ".katex")).toBe(1);
    expect(container.textContent).toContain("$ x$, $x $, $x$5 and ");
  });

  it("never reads code as a formula", () => {
    const { container } = mount("Use `$x$` in TeX.\n\n```tex\n$$a$$ \\(b\\)\n```");
    expect(count(container, ".katex")).toBe(0);
    expect(container.querySelector(".md-code")?.textContent).toBe("$x$");
    expect(container.querySelector("pre")?.textContent).toBe("$$a$$ \\(b\\)");
  });

  it("renders formulas inside emphasis, list items and links' neighbours", () => {
    const { container } = mount("**Key: $e^{i\\pi}$**\n\n- first $a$\n- second \\(b\\)");
    expect(count(container, "strong .katex")).toBe(1);
    expect(count(container, "li .katex")).toBe(2);
  });

  it("shows a formula KaTeX rejects as its source, never as an error", () => {
    const { container } = mount("Broken $\\frac{1}{$ and \\(\\badcommand x\\) and $$\\def\\a{\\a\\a}\\a$$.");
    expect(count(container, ".katex")).toBe(0);
    expect(count(container, ".katex-error")).toBe(0);
    const rejected = [...container.querySelectorAll("[data-math=rejected]")].map((e) => e.textContent);
    expect(rejected).toEqual(["$\\frac{1}{$", "\\(\\badcommand x\\)", "$$\\def\\a{\\a\\a}\\a$$"]);
  });

  it("never trusts a formula with links, images or markup", () => {
    const { container } = mount(
      "$\\href{javascript:alert(1)}{x}$ $\\includegraphics{x.png}$ $\\htmlClass{a}{b}$ $<img src=x onerror=alert(1)>$",
    );
    expect(container.querySelector("a, img, [onerror]")).toBeNull();
    expect(count(container, "[data-math=rejected]")).toBe(3);
    expect(container.textContent).toContain("$\\href{javascript:alert(1)}{x}$");
  });

  it("renders a formula only once its closing delimiter has arrived, token by token", () => {
    const tokens = ["Area: ", "$", "\\pi ", "r^2", "$", " (not $5", " or $10). ", "\\(", "a", "\\)", "\n\n", "$$\n", "x = \\frac{1}", "{2}\n", "$", "$", "\n\nDone."];
    const closed = [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3];
    let text = "";
    const { container, update } = mount(text);
    tokens.forEach((token, i) => {
      text += token;
      update(text);
      expect(count(container, ".katex"), text).toBe(closed[i]);
      expect(count(container, ".katex-error")).toBe(0);
      expect(count(container, "[data-math=rejected]")).toBe(0);
    });
    expect(count(container, ".md-math-block .katex-display")).toBe(1);
    expect(container.textContent).toContain("(not $5 or $10)");
  });

  it("shows an unclosed formula as its text while it streams in, character by character", () => {
    const answer = "So $x^2 + y^2 = r^2$ and\n\n$$\n\\int_0^1 x\\,dx = \\tfrac{1}{2}\n$$\n\nthat is all.";
    const { container, update } = mount("");
    let seen = 0;
    for (let end = 1; end <= answer.length; end++) {
      update(answer.slice(0, end));
      const now = count(container, ".katex");
      expect(now).toBeGreaterThanOrEqual(seen);
      expect(count(container, ".katex-error")).toBe(0);
      seen = now;
      if (answer.slice(0, end).endsWith("\\tfrac{1}{2}")) {
        expect(now).toBe(1);
        expect(container.querySelector(".md-math-src")?.textContent).toBe("$$\n\\int_0^1 x\\,dx = \\tfrac{1}{2}");
      }
    }
    expect(seen).toBe(2);
  });

  it("renders formulas in a learner's question, and nothing else", () => {
    const { container } = mount("Why is $x^2 \\ge 0$ for **all** x, at $5 or $10?", "question");
    expect(count(container, ".katex")).toBe(1);
    expect(container.textContent).toContain("for **all** x, at $5 or $10?");
  });
});
