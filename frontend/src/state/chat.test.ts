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
