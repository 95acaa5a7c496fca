import { afterEach, describe, expect, it, vi } from "vitest";

import { type CourseDocument, type SessionSummary, api } from "../lib/api";
import { connectedStore } from "./testing";
import { UNKNOWN_MATERIAL, courseIsEmpty, courseOptions, withDocuments, withProgress, withRefusal } from "./courses";

const doc = (id: string, status: CourseDocument["status"]): CourseDocument => ({ id, status });
const session = (id: string, course: string): SessionSummary => ({ id, course, title: id, created_at: 1, updated_at: 1 });

describe("courseIsEmpty", () => {
  it("is empty when the document list is empty and no conversation is in the course", () => {
    expect(courseIsEmpty("algebra", withDocuments(undefined, []), [])).toBe(true);
  });

  it("is not empty while the document list has not answered", () => {
    expect(courseIsEmpty("algebra", undefined, [])).toBe(false);
    expect(courseIsEmpty("algebra", UNKNOWN_MATERIAL, [])).toBe(false);
  });

  it("is not empty with a document that did not fail, even one still indexing", () => {
    expect(courseIsEmpty("algebra", withDocuments(undefined, [doc("d1", "indexing")]), [])).toBe(false);
    expect(courseIsEmpty("algebra", withDocuments(undefined, [doc("d1", "failed")]), [])).toBe(true);
  });

  it("is never empty for the bundled demo course, which has material but no documents", () => {
    expect(courseIsEmpty("demo", withDocuments(undefined, []), [])).toBe(false);
  });

  it("is not empty when one of the learner's conversations is in the course", () => {
    expect(courseIsEmpty("algebra", withDocuments(undefined, []), [session("s1", "algebra")])).toBe(false);
    expect(courseIsEmpty("algebra", withDocuments(undefined, []), [session("s1", "demo")])).toBe(true);
  });

  it("is empty once the server refused a question with course_unknown, until a document is ready", () => {
    const refused = withRefusal(withDocuments(undefined, [doc("d1", "queued")]));
    expect(courseIsEmpty("algebra", refused, [session("s1", "algebra")])).toBe(true);
    expect(courseIsEmpty("algebra", withProgress(refused, "indexing"), [])).toBe(true);
    expect(courseIsEmpty("algebra", withProgress(refused, "ready"), [])).toBe(false);
    expect(courseIsEmpty("algebra", withDocuments(refused, [doc("d1", "ready")]), [])).toBe(false);
  });

  it("stops being empty when a document of the course arrives", () => {
    const empty = withDocuments(undefined, []);
    expect(courseIsEmpty("algebra", withProgress(empty, "queued"), [])).toBe(false);
    expect(courseIsEmpty("algebra", withProgress(empty, "failed"), [])).toBe(true);
  });
});

describe("courseOptions", () => {
  it("offers the token's courses, plus the shown one when the token lacks it", () => {
    expect(courseOptions(["demo", "physics"], "physics")).toEqual(["demo", "physics"]);
    expect(courseOptions(["demo"], "history")).toEqual(["demo", "history"]);
  });
});

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("ChatStore courses", () => {
  afterEach(() => vi.restoreAllMocks());

  it("starts a new conversation when the course changes, keeping the old one", async () => {
    vi.spyOn(api, "documents").mockResolvedValue([]);
    const { store, close } = connectedStore(["demo", "physics"]);
    store.ask("why?", "explain");
    const first = store.getSnapshot().current;
    expect(first).not.toBeNull();
    store.setCourse("physics");
    const snap = store.getSnapshot();
    expect([snap.course, snap.current]).toEqual(["physics", null]);
    expect(snap.views.get(first as string)?.course).toBe("demo");
    close();
  });

  it("selects the course of a conversation opened from the list", async () => {
    vi.spyOn(api, "documents").mockResolvedValue([]);
    vi.spyOn(api, "sessions").mockResolvedValue({ sessions: [session("s-phys", "physics")] });
    vi.spyOn(api, "messages").mockResolvedValue({ session: "s-phys", course: "physics", messages: [] });
    const { store, close } = connectedStore(["demo", "physics"]);
    await store.refreshSessions();
    expect(store.getSnapshot().course).toBe("demo");
    await store.openSession("s-phys");
    expect(store.getSnapshot().course).toBe("physics");
    close();
  });

  it("selects the course of a conversation restored before the list arrived, from its history", async () => {
    vi.spyOn(api, "documents").mockResolvedValue([]);
    vi.spyOn(api, "sessions").mockReturnValue(new Promise(() => undefined));
    vi.spyOn(api, "messages").mockResolvedValue({ session: "s-hist", course: "history", messages: [] });
    const { store, close } = connectedStore(["demo"]);
    await store.openSession("s-hist");
    const snap = store.getSnapshot();
    expect([snap.course, snap.current]).toEqual(["history", "s-hist"]);
    expect(courseOptions(snap.courses, snap.course)).toEqual(["demo", "history"]);
    close();
  });

  it("marks the course empty when the server refuses a question with course_unknown", async () => {
    vi.spyOn(api, "documents").mockRejectedValue(new Error("offline"));
    const { store, sock, close } = connectedStore(["demo", "physics"]);
    store.setCourse("physics");
    await flush();
    const before = store.getSnapshot();
    expect(courseIsEmpty("physics", before.material.get("physics"), before.sessions)).toBe(false);
    store.ask("anything here?", "explain");
    const sent = JSON.parse(sock.sent[sock.sent.length - 1] as string) as { id: string; course: string };
    expect(sent.course).toBe("physics");
    sock.push({ type: "error", code: "course_unknown", message: "no course 'physics'", ref: sent.id });
    const after = store.getSnapshot();
    expect(courseIsEmpty("physics", after.material.get("physics"), after.sessions)).toBe(true);
    sock.push({ type: "document.progress", document: "d1", course: "physics", status: "ready", progress: 1 });
    const ready = store.getSnapshot();
    expect(courseIsEmpty("physics", ready.material.get("physics"), ready.sessions)).toBe(false);
    close();
  });

  it("reads the selected course's document list", async () => {
    const documents = vi.spyOn(api, "documents").mockResolvedValue([]);
    const { store, close } = connectedStore(["demo", "physics"]);
    store.setCourse("physics");
    await flush();
    expect(documents).toHaveBeenCalledWith("t.o.k", "physics");
    const snap = store.getSnapshot();
    expect(courseIsEmpty("physics", snap.material.get("physics"), snap.sessions)).toBe(true);
    close();
  });
});
