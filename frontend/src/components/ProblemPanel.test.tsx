import { renderToStaticMarkup } from "react-dom/server";
import { afterEach, describe, expect, it, vi } from "vitest";

import { api } from "../lib/api";
import { connectedStore } from "../state/testing";
import { ProblemPanel, advice, pagesLabel } from "./ProblemPanel";

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

afterEach(() => vi.restoreAllMocks());

describe("ProblemPanel", () => {
  it("words pages and the server's advice", () => {
    expect(pagesLabel([2])).toBe("Page 2");
    expect(pagesLabel([2, 5])).toBe("Pages 2, 5");
    expect(pagesLabel([])).toBe("");
    expect(advice("Not yet. Re-read page 2.", "Not yet")).toBe("Re-read page 2.");
    expect(advice("Correct. Ask for the worked solution.", "Correct")).toBe("Ask for the worked solution.");
    expect(advice("Look at the premises.", "Not yet")).toBe("Look at the premises.");
  });

  it("shows nothing without problems, and the chosen problem with its grade", async () => {
    vi.spyOn(api, "documents").mockResolvedValue([]);
    vi.spyOn(api, "policy").mockRejectedValue(new Error("offline"));
    const problems = vi.spyOn(api, "problems").mockResolvedValue([]);
    let harness = connectedStore(["demo"]);
    await flush();
    expect(renderToStaticMarkup(<ProblemPanel store={harness.store} snap={harness.store.getSnapshot()} />)).toBe("");
    harness.close();

    problems.mockResolvedValue([{ id: "p1", course: "demo", statement: "Is it valid?", policy: "hint_only", pages: [2] }]);
    harness = connectedStore(["demo"]);
    await flush();
    const { store, sock } = harness;
    store.selectProblem("p1");
    store.attempt("invalid");
    const sent = JSON.parse(sock.sent[sock.sent.length - 1] as string) as { id: string };
    sock.push({ type: "feedback", ref: sent.id, problem: "p1", correct: false, message: "Not yet. Re-read page 2." });
    const html = renderToStaticMarkup(<ProblemPanel store={store} snap={store.getSnapshot()} />);
    expect(html).toContain("Problems (1)");
    expect(html).toContain("Working on:");
    expect(html).toContain("Your answer");
    expect(html).toContain('aria-live="polite"');
    expect(html).toMatch(/Not yet\.<\/span> Re-read page 2\. <span[^>]*>Your answer: “invalid”/);
    harness.close();
  });
});
