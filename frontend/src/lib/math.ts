// KaTeX and its stylesheet: a chunk of their own, fetched the first time an answer
// may hold a formula (mathFormula.tsx), so the main bundle stays small.
//
// Formulas are built as DOM nodes (katex.render), not as an HTML string: KaTeX sets
// its inline sizes through element.style, which the page's Content-Security-Policy
// (style-src 'self', no inline style attributes) allows.

import katex, { type KatexOptions } from "katex";
import "katex/dist/katex.min.css";

const OPTIONS: KatexOptions = {
  throwOnError: true,
  // Unicode text in math mode and similar LaTeX incompatibilities are fine.
  strict: "ignore",
  // Bounds on what one formula may cost: macro expansions and the size of rules and boxes (em).
  maxExpand: 500,
  maxSize: 50,
  output: "htmlAndMathml",
};

/**
 * Render ``tex`` into ``element``; false (and ``element`` left empty) when KaTeX rejects it.
 *
 * Rejected: a parse error, or a command that needs trust (\href, \url, \includegraphics,
 * \htmlClass, …). Trust is never given, so no formula makes a link, an image or markup.
 */
export function renderFormula(element: HTMLElement, tex: string, display: boolean): boolean {
  let untrusted = false;
  try {
    katex.render(tex, element, {
      ...OPTIONS,
      displayMode: display,
      trust: () => {
        untrusted = true;
        return false;
      },
    });
  } catch (err) {
    // Anything else is a KaTeX bug: worth a report, but one formula must not break the page.
    if (!(err instanceof katex.ParseError)) console.error("math.render_failed", err);
    element.textContent = "";
    return false;
  }
  if (untrusted) element.textContent = "";
  return !untrusted;
}
