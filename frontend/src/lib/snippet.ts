// Where a cited snippet sits among a PDF page's text runs (pdf.js text layer items).
//
// The snippet comes from the server's text extraction and the runs from pdf.js, so
// line breaks, hyphenation, spacing and punctuation differ between the two: both
// are compared as letters and digits only, lower-cased. When the whole snippet is
// not on the page, the longest run of its words that is (at least MIN_WORDS words)
// is highlighted instead.

const MIN_WORDS = 3;
const MIN_CHARS = 12;
const KEEP = /[\p{L}\p{N}]/u;

export interface SnippetMatch {
  /** Indexes of the text runs that hold the match, ascending. */
  items: number[];
  /** True when the whole snippet was found, false for its longest part on the page. */
  whole: boolean;
}

function fold(text: string): string {
  let out = "";
  for (const ch of text.normalize("NFKD").toLowerCase()) if (KEEP.test(ch)) out += ch;
  return out;
}

/** The text runs that hold ``snippet`` (or its longest part found), or null. */
export function findSnippet(items: readonly string[], snippet: string): SnippetMatch | null {
  let flat = "";
  const owner: number[] = [];
  items.forEach((item, index) => {
    const folded = fold(item);
    flat += folded;
    for (let i = 0; i < folded.length; i++) owner.push(index);
  });
  const cited = snippet.replace(/(…|\.\.\.)\s*$/u, "");
  const covering = (start: number, length: number): number[] => {
    const found = new Set<number>();
    for (let i = start; i < start + length; i++) found.add(owner[i] as number);
    return [...found].sort((a, b) => a - b);
  };

  const whole = fold(cited);
  if (whole.length >= 1) {
    const at = flat.indexOf(whole);
    if (at >= 0) return { items: covering(at, whole.length), whole: true };
  }
  const words = cited
    .split(/\s+/u)
    .map(fold)
    .filter((w) => w.length > 0);
  for (let size = words.length - 1; size >= MIN_WORDS; size--) {
    for (let first = 0; first + size <= words.length; first++) {
      const part = words.slice(first, first + size).join("");
      if (part.length < MIN_CHARS) continue;
      const at = flat.indexOf(part);
      if (at >= 0) return { items: covering(at, part.length), whole: false };
    }
  }
  return null;
}
