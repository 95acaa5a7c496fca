import { describe, expect, it } from "vitest";

import { findSnippet } from "./snippet";

// Text runs as pdf.js gives them for a page: one per line (or part of a line).
const PAGE = [
  "Deductive validity",
  "A deductive argument is valid when it is impossible for all of its premises to be true and its",
  "conclusion false. Validity concerns the form of the argument, not whether the premises are",
  "actually true.",
  "An argument is sound when it is valid and all of its premises are true. A sound argu-",
  "ment guarantees a true conclusion.",
  "Page 2 of 8",
];

describe("findSnippet", () => {
  it("finds a snippet that runs across lines", () => {
    const match = findSnippet(PAGE, "A deductive argument is valid when it is impossible for all of its premises to be true and its conclusion false.");
    expect(match).toEqual({ items: [1, 2], whole: true });
  });

  it("ignores the ellipsis of a cut snippet, and spacing, case and punctuation", () => {
    const match = findSnippet(PAGE, "validity   CONCERNS the form of the argument — not whether…");
    expect(match).toEqual({ items: [2], whole: true });
  });

  it("joins a word hyphenated at the end of a line", () => {
    const match = findSnippet(PAGE, "A sound argument guarantees a true conclusion.");
    expect(match).toEqual({ items: [4, 5], whole: true });
  });

  it("falls back to the longest part of the snippet on the page", () => {
    const match = findSnippet(PAGE, "Validity concerns the form of the argument and other things printed on the next page");
    expect(match).toEqual({ items: [2], whole: false });
  });

  it("finds nothing for text that is not on the page", () => {
    expect(findSnippet(PAGE, "Correlation does not show that one causes the other.")).toBeNull();
  });

  it("does not settle for a part shorter than three words", () => {
    expect(findSnippet(PAGE, "sound argument elsewhere entirely unrelated")).toBeNull();
  });

  it("matches letters beyond ASCII, with or without accents composed", () => {
    const match = findSnippet(["Le café est fermé", "le dimanche."], "cafe\u0301 est fermé le dimanche");
    expect(match).toEqual({ items: [0, 1], whole: true });
  });

  it("finds nothing on an empty page or for an empty snippet", () => {
    expect(findSnippet([], "anything at all here")).toBeNull();
    expect(findSnippet(PAGE, "")).toBeNull();
  });
});
