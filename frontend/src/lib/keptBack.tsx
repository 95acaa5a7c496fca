// The marker a hint shows in place of a sentence the tutor kept back because it would
// give the answer away. Neutral on purpose: nothing went wrong, the learner is not at fault.

export const KEPT_BACK = "The tutor kept this back";

const PHRASE = /^\(?\s*the tutor kept this back\b[\s:.…,;-]*/i;

/** What the server's replacement text adds to the marker's own words ("" when nothing). */
export function keptBackDetail(replacement: string): string {
  let text = replacement.trim();
  const m = PHRASE.exec(text);
  if (m) {
    text = text.slice(m[0].length);
    if (m[0].startsWith("(")) text = text.replace(/\)\s*$/, "");
  }
  return text.trim();
}

export function KeptBack({ text }: { text: string }) {
  const detail = keptBackDetail(text);
  return (
    <span
      role="note"
      aria-label={detail ? `${KEPT_BACK}: ${detail}` : KEPT_BACK}
      data-testid="kept-back"
      className="rounded-md border border-dashed border-slate-400 bg-slate-100 px-1.5 py-0.5 text-[0.92em] text-slate-700 [box-decoration-break:clone]"
    >
      <svg aria-hidden="true" viewBox="0 0 16 16" className="mr-1 inline h-3.5 w-3.5 align-[-0.15em]" fill="currentColor">
        <path d="M5 7V5a3 3 0 0 1 6 0v2h.5A1.5 1.5 0 0 1 13 8.5v5a1.5 1.5 0 0 1-1.5 1.5h-7A1.5 1.5 0 0 1 3 13.5v-5A1.5 1.5 0 0 1 4.5 7H5zm1.5 0h3V5a1.5 1.5 0 0 0-3 0v2z" />
      </svg>
      <span className="font-medium">{KEPT_BACK}</span>
      {detail && <span>: {detail}</span>}
    </span>
  );
}
