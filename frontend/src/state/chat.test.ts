import { describe, expect, it } from "vitest";

import type { StoredMessage } from "../protocol/frames";
import { type ChatMessage, mergeMessages } from "./chat";

const stored = (n: number, role: "learner" | "tutor" = "learner", extra: Partial<StoredMessage> = {}): StoredMessage => ({
  id: `m${n}`,
  role,
  text: `text ${n}`,
  created_at: 1000 + n,
  mode: "explain",
  stream: role === "tutor" ? `st${n}` : null,
  reason: role === "tutor" ? "stop" : null,
  sources: [],
  model: null,
  cached: false,
  ...extra,
});

const live = (key: string, extra: Partial<ChatMessage>): ChatMessage => ({
  key,
  role: "tutor",
  text: "",
  status: "streaming",
  sources: [],
  createdAt: 1_000_000,
  ...extra,
});

describe("mergeMessages", () => {
  it("puts an earlier page in front and a later window behind, without repeats", () => {
    const page2 = [3, 4, 5].map((n) => stored(n));
    const view = mergeMessages([], page2);
    const withEarlier = mergeMessages(view, [0, 1, 2].map((n) => stored(n)));
    const withLater = mergeMessages(withEarlier, [4, 5, 6].map((n) => stored(n)));
    expect(withLater.map((m) => m.id)).toEqual(["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
  });

  it("keeps the server's order even when clocks step backwards", () => {
    const out = mergeMessages([], [stored(1, "learner", { created_at: 50 }), stored(2, "tutor", { created_at: 10 })]);
    expect(out.map((m) => m.id)).toEqual(["m1", "m2"]);
  });

  it("replaces a live answer with its stored copy and a live question with the stored one", () => {
    const current = [
      live("ask:a1", { role: "learner", text: "why?", status: "sent", createdAt: 1_000_000 }),
      live("stream:st2", { stream: "st2", text: "partial" }),
    ];
    const out = mergeMessages(current, [
      stored(1, "learner", { text: "why?", created_at: 1000 }),
      stored(2, "tutor", { stream: "st2", text: "full answer" }),
    ]);
    expect(out.map((m) => [m.key, m.text])).toEqual([
      ["m1", "why?"],
      ["m2", "full answer"],
    ]);
  });

  it("keeps live answers still running and questions waiting to be sent", () => {
    const current = [
      live("ask:q", { role: "learner", text: "later", status: "queued" }),
      live("stream:st9", { stream: "st9", text: "so far" }),
    ];
    const out = mergeMessages(current, [stored(1)]);
    expect(out.map((m) => m.key)).toEqual(["m1", "ask:q", "stream:st9"]);
  });
});

describe("ChatStore", () => {
  it("shows a question, its streaming answer and its end, from the client's events", async () => {
    const { connectedStore } = await import("./testing");
    const { store, sock: s, close } = connectedStore(["demo"]);
    expect(store.getSnapshot().maxQuestionChars).toBe(99);
    store.ask("why?", "hint");
    const sent = JSON.parse(s.sent[s.sent.length - 1] as string) as { id: string; session: string; mode: string };
    expect(sent.mode).toBe("hint");
    const session = store.getSnapshot().current as string;
    expect(sent.session).toBe(session);
    s.push({ type: "stream.start", stream: "st", ask: sent.id, session, course: "demo", mode: "hint", text: "why?" });
    s.push({ type: "delta", stream: "st", seq: 1, text: "Because " });
    s.push({ type: "delta", stream: "st", seq: 2, text: "reasons." });
    let view = store.getSnapshot().views.get(session);
    expect(view?.messages.map((m) => [m.role, m.status, m.text])).toEqual([
      ["learner", "sent", "why?"],
      ["tutor", "streaming", "Because reasons."],
    ]);
    s.push({
      type: "stream.end",
      stream: "st",
      seq: 2,
      reason: "cancelled",
      sources: [{ document: "Doc", page: 3, heading: "H", snippet: "S", score: 1 }],
      cached: false,
      model: "offline",
    });
    view = store.getSnapshot().views.get(session);
    const answer = view?.messages[1];
    expect([answer?.status, answer?.reason, answer?.sources[0]?.page]).toEqual(["done", "cancelled", 3]);
    // An ask the server refuses is marked failed with the reason.
    store.ask("again", "explain");
    const second = JSON.parse(s.sent[s.sent.length - 1] as string) as { id: string };
    s.push({ type: "error", code: "rate_limited", message: "slow down", ref: second.id, retry_after_ms: 2500 });
    const failed = store.getSnapshot().views.get(session)?.messages[2];
    expect([failed?.status, failed?.note]).toEqual(["failed", "Too many questions at once. Try again in 3 s."]);
    close();
  });
});
