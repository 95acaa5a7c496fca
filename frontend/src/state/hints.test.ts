import { afterEach, describe, expect, it, vi } from "vitest";

import { type CoursePolicy, type Problem, api } from "../lib/api";
import type { StoredMessage } from "../protocol/frames";
import { mergeMessages, nextPolicyChangeMs } from "./chat";
import { hintLabel, withDelta, withheldRanges } from "./hints";
import { connectedStore } from "./testing";

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

const problem = (id: string, extra: Partial<Problem> = {}): Problem => ({
  id,
  course: "demo",
  statement: `Statement of ${id}`,
  policy: "open",
  pages: [2],
  ...extra,
});

const policy = (hintOnlyNow: boolean): CoursePolicy => ({
  course: "demo",
  mode: hintOnlyNow ? "hint_only" : "open",
  hint_only_from: null,
  hint_only_until: null,
  hint_only_now: hintOnlyNow,
});

/** A store with `problems` in the demo course (and the policy given). */
async function withProblems(problems: Problem[], hintOnlyNow = false) {
  vi.spyOn(api, "documents").mockResolvedValue([]);
  vi.spyOn(api, "sessions").mockResolvedValue({ sessions: [] });
  vi.spyOn(api, "problems").mockResolvedValue(problems);
  vi.spyOn(api, "policy").mockResolvedValue(policy(hintOnlyNow));
  const harness = connectedStore(["demo", "physics"]);
  await flush();
  return harness;
}

const lastSent = (sent: string[]) => JSON.parse(sent[sent.length - 1] as string) as Record<string, unknown>;

const DELTAS: [string, string, string] = ["Think about the form. ", "(The tutor kept this back: it would give the answer away.) ", "Which premise holds?"];

afterEach(() => vi.restoreAllMocks());

describe("withheldRanges", () => {
  it("finds the text of the withheld deltas, without their surrounding space", () => {
    let spans = withDelta(undefined, 1, 0, 6);
    spans = withDelta(spans, 2, 6, 10);
    spans = withDelta(spans, 3, 16, 3);
    const text = "Look. Kept back. Go";
    expect(withheldRanges(text, spans, [2])).toEqual([{ start: 6, end: 16 }]);
    expect(text.slice(6, 16)).toBe("Kept back.");
  });

  it("leaves out blank withheld deltas, unknown seqs and spans past the text", () => {
    const spans = withDelta(withDelta(undefined, 1, 0, 3), 2, 3, 2);
    expect(withheldRanges("abc  ", spans, [2])).toEqual([]);
    expect(withheldRanges("abc  ", spans, [7])).toEqual([]);
    expect(withheldRanges("ab", spans, [1])).toEqual([]);
    expect(withheldRanges("abc", undefined, [1])).toEqual([]);
  });

  it("labels a rung of the ladder", () => {
    expect(hintLabel(2)).toBe("Hint 2 of 4");
    expect(hintLabel(undefined)).toBe("Hint");
    expect(hintLabel(9)).toBe("Hint 4 of 4");
  });
});

describe("ChatStore hints", () => {
  it("keeps a hint's rung, problem and withheld parts from stream.start and stream.end", async () => {
    const { store, sock, close } = await withProblems([problem("p1")]);
    store.selectProblem("p1");
    store.ask("a hint please", "hint");
    const ask = lastSent(sock.sent);
    expect(ask.problem).toBe("p1");
    const session = ask.session as string;
    sock.push({ type: "stream.start", stream: "st1", ask: ask.id, session, course: "demo", mode: "hint", hint_level: 2, problem: "p1" });
    DELTAS.forEach((text, i) => sock.push({ type: "delta", stream: "st1", seq: i + 1, text }));
    const streaming = store.getSnapshot().views.get(session)?.messages.at(-1);
    expect(streaming?.hintLevel).toBe(2);
    expect(streaming?.withheld).toBeUndefined();
    sock.push({ type: "stream.end", stream: "st1", seq: 3, reason: "stop", sources: [], cached: false, model: "m", hint_level: 2, withheld: [2] });
    const done = store.getSnapshot().views.get(session)?.messages.at(-1);
    expect(done?.status).toBe("done");
    expect(done?.problem).toBe("p1");
    expect(done?.spans).toBeUndefined();
    const range = done?.withheld?.[0] ?? { start: 0, end: 0 };
    expect(done?.text.slice(range.start, range.end)).toBe("(The tutor kept this back: it would give the answer away.)");
    expect(done?.withheld).toHaveLength(1);
    close();
  });

  it("marks nothing for text adopted from a session frame: its seqs are unknown", async () => {
    const { store, sock, close } = await withProblems([]);
    store.ask("hint", "hint");
    const ask = lastSent(sock.sent);
    const session = ask.session as string;
    sock.push({ type: "stream.start", stream: "st2", ask: ask.id, session, course: "demo", mode: "hint", hint_level: 1 });
    sock.push({ type: "delta", stream: "st2", seq: 1, text: DELTAS[0] });
    // Another tab's view: the session frame carries the text up to seq 2, then seq 3 arrives live.
    sock.push({ type: "session", ref: null, session, course: "demo", title: "t", messages: [], presence: [], streams: [{ stream: "st2", ask: ask.id, seq: 2, text: DELTAS[0] + DELTAS[1] }] });
    sock.push({ type: "delta", stream: "st2", seq: 3, text: DELTAS[2] });
    sock.push({ type: "stream.end", stream: "st2", seq: 3, reason: "stop", sources: [], cached: false, model: "m", hint_level: 1, withheld: [2] });
    const done = store.getSnapshot().views.get(session)?.messages.at(-1);
    expect(done?.text).toBe(DELTAS.join(""));
    expect(done?.withheld).toEqual([]);
    close();
  });

  it("still marks a withheld delta seen before a session frame added text after it", async () => {
    const { store, sock, close } = await withProblems([]);
    store.ask("hint", "hint");
    const ask = lastSent(sock.sent);
    const session = ask.session as string;
    sock.push({ type: "stream.start", stream: "st5", ask: ask.id, session, course: "demo", mode: "hint", hint_level: 1 });
    sock.push({ type: "delta", stream: "st5", seq: 1, text: DELTAS[0] });
    sock.push({ type: "delta", stream: "st5", seq: 2, text: DELTAS[1] });
    sock.push({ type: "session", ref: null, session, course: "demo", title: "t", messages: [], presence: [], streams: [{ stream: "st5", ask: ask.id, seq: 3, text: DELTAS.join("") }] });
    sock.push({ type: "stream.end", stream: "st5", seq: 3, reason: "stop", sources: [], cached: false, model: "m", hint_level: 1, withheld: [2] });
    const done = store.getSnapshot().views.get(session)?.messages.at(-1);
    expect(done?.text).toBe(DELTAS.join(""));
    expect(done?.withheld).toEqual([{ start: DELTAS[0].length, end: DELTAS[0].length + DELTAS[1].trimEnd().length }]);
    close();
  });

  it("keeps the rung and withheld parts when the stored copy replaces the live answer", () => {
    const live = {
      key: "stream:st3",
      role: "tutor" as const,
      text: "A. B. C.",
      stream: "st3",
      status: "done" as const,
      sources: [],
      createdAt: 1,
      hintLevel: 3,
      hintOnly: true,
      withheld: [{ start: 3, end: 5 }],
    };
    const stored = (text: string): StoredMessage => ({ id: "m1", role: "tutor", text, created_at: 1, mode: "hint", stream: "st3", reason: "stop", sources: [], model: null, cached: false });
    const [same] = mergeMessages([live], [stored("A. B. C.")]);
    expect([same?.id, same?.hintLevel, same?.hintOnly, same?.withheld]).toEqual(["m1", 3, true, [{ start: 3, end: 5 }]]);
    const [other] = mergeMessages([live], [stored("A. other text")]);
    expect([other?.hintLevel, other?.withheld]).toEqual([3, undefined]);
  });

  it("marks an explain question answered as a hint and reads the policy again", async () => {
    const { store, sock, close } = await withProblems([problem("p1")]);
    expect(store.getSnapshot().policy?.hint_only_now).toBe(false);
    vi.mocked(api.policy).mockResolvedValue(policy(true));
    store.ask("explain it", "explain");
    const ask = lastSent(sock.sent);
    expect(ask.problem).toBeUndefined();
    sock.push({ type: "stream.start", stream: "st4", ask: ask.id, session: ask.session, course: "demo", mode: "hint", hint_level: 1, hint_only: true });
    await flush();
    const snap = store.getSnapshot();
    expect(snap.views.get(ask.session as string)?.messages.at(-1)?.hintOnly).toBe(true);
    expect(snap.policy?.hint_only_now).toBe(true);
    close();
  });
});

describe("ChatStore problems", () => {
  it("lists the course's problems and reads them again when the course changes", async () => {
    const { store, close } = await withProblems([problem("p1"), problem("p2")], true);
    let snap = store.getSnapshot();
    expect(snap.problems.list?.map((p) => p.id)).toEqual(["p1", "p2"]);
    expect(snap.policy?.hint_only_now).toBe(true);
    store.selectProblem("p2");
    expect(store.getSnapshot().problem).toBe("p2");
    store.selectProblem("nope");
    expect(store.getSnapshot().problem).toBe("p2");
    vi.mocked(api.problems).mockResolvedValue([problem("q1", { course: "physics" })]);
    store.setCourse("physics");
    expect([store.getSnapshot().problem, store.getSnapshot().problems.list]).toEqual([null, null]);
    await flush();
    snap = store.getSnapshot();
    expect([snap.problems.course, snap.problems.list?.map((p) => p.id)]).toEqual(["physics", ["q1"]]);
    expect(api.problems).toHaveBeenLastCalledWith("t.o.k", "physics");
    close();
  });

  it("sends an attempt and shows its feedback, wrong then right", async () => {
    const { store, sock, close } = await withProblems([problem("p1")]);
    expect(store.attempt("valid")).toBe(false);
    store.selectProblem("p1");
    expect(store.attempt("  invalid ")).toBe(true);
    const first = lastSent(sock.sent);
    expect(first).toMatchObject({ type: "attempt", course: "demo", problem: "p1", text: "invalid" });
    expect(store.getSnapshot().attempts.at(-1)?.status).toBe("checking");
    sock.push({ type: "feedback", ref: first.id, problem: "p1", correct: false, message: "Look at the premises again." });
    expect(store.getSnapshot().attempts.at(-1)).toMatchObject({ status: "graded", correct: false, message: "Look at the premises again." });
    store.attempt("valid");
    const second = lastSent(sock.sent);
    sock.push({ type: "feedback", ref: second.id, problem: "p1", correct: true, message: "Well done." });
    expect(store.getSnapshot().attempts.map((a) => [a.text, a.correct])).toEqual([
      ["invalid", false],
      ["valid", true],
    ]);
    close();
  });

  it("shows an attempt the server refused as not checked", async () => {
    const { store, sock, close } = await withProblems([problem("p1")]);
    store.selectProblem("p1");
    store.attempt("42");
    const sent = lastSent(sock.sent);
    sock.push({ type: "error", code: "problem_unknown", message: "no problem 'p1' in this course", ref: sent.id });
    expect(store.getSnapshot().attempts.at(-1)).toMatchObject({ status: "failed", message: "no problem 'p1' in this course" });
    close();
  });
});

describe("nextPolicyChangeMs", () => {
  const at = (from: string | null, until: string | null, mode: "open" | "hint_only" = "hint_only"): CoursePolicy => ({
    course: "demo",
    mode,
    hint_only_from: from,
    hint_only_until: until,
    hint_only_now: false,
  });
  const now = Date.parse("2026-06-01T09:00:00Z");

  it("waits for the next edge of the hints-only window, a second past it", () => {
    expect(nextPolicyChangeMs(at("2026-06-01T09:10:00Z", "2026-06-01T10:00:00Z"), now)).toBe(601_000);
    expect(nextPolicyChangeMs(at("2026-06-01T08:00:00Z", "2026-06-01T09:00:30Z"), now)).toBe(31_000);
  });

  it("never reads again for an open course, a window without edges ahead, or one far away", () => {
    expect(nextPolicyChangeMs(at("2026-06-01T09:10:00Z", null, "open"), now)).toBeNull();
    expect(nextPolicyChangeMs(at(null, null), now)).toBeNull();
    expect(nextPolicyChangeMs(at("2026-05-01T00:00:00Z", null), now)).toBeNull();
    expect(nextPolicyChangeMs(at("2026-09-01T00:00:00Z", null), now)).toBe(24 * 3600_000);
  });
});
