// Hints that hold: where a hint's withheld sentences sit in its text, and the learner's
// attempts at course problems. Pure functions: the store (chat.ts) keeps the facts.
//
// A hint's text is the join of its deltas. The guard replaces a sentence that would give
// the answer away by a neutral delta of its own, and `stream.end.withheld` lists those
// deltas' seqs. So while a hint streams the store remembers which part of the text each
// delta holds; at the end, the withheld seqs become character ranges of the text that the
// page shows as a "kept back" marker. Text the page did not see delta by delta (a running
// answer adopted from a `session` frame, a stored message) has no such record: there the
// server's replacement text shows as it is.

/** The highest rung of the hint ladder. */
export const HINT_RUNGS = 4;

/** Where one delta's text sits in its message's text: [start, end). */
export interface DeltaSpan {
  seq: number;
  start: number;
  end: number;
}

/** A part of a message's text: [start, end). */
export interface TextRange {
  start: number;
  end: number;
}

/** The spans after a delta of `length` characters was appended to `textLength` characters of text. */
export function withDelta(spans: readonly DeltaSpan[] | undefined, seq: number, textLength: number, length: number): DeltaSpan[] {
  return [...(spans ?? []), { seq, start: textLength, end: textLength + length }];
}

/**
 * The ranges of `text` that stand in for withheld sentences, in order: the spans of the
 * withheld seqs, without their surrounding white space; blank ones (a second withheld
 * sentence in a row only carries the space between sentences) and ones past the text
 * are left out.
 */
export function withheldRanges(text: string, spans: readonly DeltaSpan[] | undefined, withheld: readonly number[] | undefined): TextRange[] {
  if (!spans?.length || !withheld?.length) return [];
  const seqs = new Set(withheld);
  const ranges: TextRange[] = [];
  for (const span of spans) {
    if (!seqs.has(span.seq) || span.end > text.length) continue;
    let start = span.start;
    let end = span.end;
    while (start < end && /\s/.test(text[start] as string)) start++;
    while (end > start && /\s/.test(text[end - 1] as string)) end--;
    if (end > start) ranges.push({ start, end });
  }
  return ranges.sort((a, b) => a.start - b.start);
}

/** A rung as the learner reads it: "Hint 2 of 4". */
export function hintLabel(level: number | undefined): string {
  if (!level || level < 1) return "Hint";
  return `Hint ${Math.min(level, HINT_RUNGS)} of ${HINT_RUNGS}`;
}

/** An answer the learner gave to a course problem, and its grade once it came back. */
export interface Attempt {
  /** The attempt frame's id (`t-…`), echoed by `feedback` as `ref`. */
  id: string;
  course: string;
  problem: string;
  text: string;
  status: "checking" | "graded" | "failed";
  correct?: boolean;
  /** The server's feedback (what to do next; never the answer), or why it failed. */
  message?: string;
  at: number;
}

/** Attempts kept per page: older ones drop off. */
export const MAX_ATTEMPTS = 50;

/** The attempts after one was added, the oldest dropped beyond MAX_ATTEMPTS. */
export function withAttempt(attempts: readonly Attempt[], attempt: Attempt): Attempt[] {
  return [...attempts, attempt].slice(-MAX_ATTEMPTS);
}

/** The attempts after `id` changed; unchanged when there is no such attempt. */
export function updateAttempt(attempts: readonly Attempt[], id: string, patch: Partial<Attempt>): Attempt[] {
  if (!attempts.some((a) => a.id === id)) return attempts as Attempt[];
  return attempts.map((a) => (a.id === id ? { ...a, ...patch } : a));
}

/** True when a correct attempt at `problem` came back. */
export function solved(attempts: readonly Attempt[], course: string, problem: string): boolean {
  return attempts.some((a) => a.course === course && a.problem === problem && a.correct === true);
}
