// What the chat view shows, built from the protocol client's events and the HTTP API.
// Plain TypeScript with a subscribe/getSnapshot pair for React's useSyncExternalStore.

import { ApiError, type CoursePolicy, type Problem, type SessionSummary, api } from "../lib/api";
import type { StateInfo, TutorClient } from "../protocol/client";
import {
  type DeltaFrame,
  type ErrorFrame,
  type FeedbackFrame,
  type Mode,
  type PredictionsFrame,
  type SessionFrame,
  type Source,
  type StoredMessage,
  type StreamEndFrame,
  type StreamStartFrame,
  newId,
} from "../protocol/frames";
import { type CourseMaterial, withDocuments, withProgress, withRefusal } from "./courses";
import {
  type Attempt,
  type DeltaSpan,
  type TextRange,
  updateAttempt,
  withAttempt,
  withDelta,
  withheldRanges,
} from "./hints";

export interface ChatMessage {
  /** Stable key: the stored id, or `ask:<id>` / `stream:<id>` while live. */
  key: string;
  id?: string;
  role: "learner" | "tutor";
  text: string;
  mode?: Mode | null;
  ask?: string;
  stream?: string;
  status: "queued" | "sending" | "sent" | "streaming" | "done" | "failed";
  reason?: string | null;
  sources: Source[];
  model?: string | null;
  cached?: boolean;
  fallback?: boolean;
  takenOver?: boolean;
  /** Why it failed, or what the model reported. */
  note?: string | null;
  createdAt: number;
  /** A hint's rung of the ladder (1 to 4). */
  hintLevel?: number;
  /** The course problem the question is about. */
  problem?: string;
  /** An explain question answered as a hint because the course or problem holds hints only. */
  hintOnly?: boolean;
  /** While streaming: where each delta's text sits in `text` (hints.ts). */
  spans?: DeltaSpan[];
  /** Once ended: the parts of `text` that stand in for sentences the tutor kept back. */
  withheld?: TextRange[];
}

/** The problems of the selected course, as `GET /courses/{course}/problems` listed them. */
export interface CourseProblems {
  course: string;
  /** Null until the list arrived (or when it could not be read). */
  list: Problem[] | null;
  error?: string;
}

export interface SessionView {
  id: string;
  course: string;
  title: string;
  messages: ChatMessage[];
  loaded: boolean;
  /** Older messages exist on the server (the last page was full). */
  hasEarlier?: boolean;
  loadingEarlier?: boolean;
  error?: string;
}

export interface ChatSnapshot {
  user: string;
  /** The selected course: the open conversation's course, or the one a new conversation goes to. */
  course: string;
  courses: string[];
  current: string | null;
  sessions: SessionSummary[];
  views: ReadonlyMap<string, SessionView>;
  connection: StateInfo;
  notice: string | null;
  predictions: PredictionsFrame | null;
  /** Longest question the server takes (from `welcome`). */
  maxQuestionChars: number;
  /** What the page learned about each course's material (see courses.ts). */
  material: ReadonlyMap<string, CourseMaterial>;
  /** The selected course's problems. */
  problems: CourseProblems;
  /** The selected course's tutoring policy; null until known. */
  policy: CoursePolicy | null;
  /** The problem the learner works on (of the selected course): questions carry it. */
  problem: string | null;
  /** Answers given to problems, oldest first, with their grades. */
  attempts: Attempt[];
}

const LEARNER_MATCH_WINDOW_MS = 10 * 60_000;
/** Messages per HTTP page (the server's largest). */
export const PAGE_SIZE = 1000;

function fromStored(m: StoredMessage): ChatMessage {
  return {
    key: m.id,
    id: m.id,
    role: m.role,
    text: m.text,
    mode: m.mode,
    stream: m.stream ?? undefined,
    status: "done",
    reason: m.reason,
    sources: m.sources ?? [],
    model: m.model,
    cached: m.cached,
    createdAt: m.created_at * 1000,
  };
}

/**
 * Merge stored messages into a view. Stored messages keep the server's order: the
 * incoming ones form one window of it, so unknown ones before the first known go in
 * front and the rest after. Live entries follow, unless a stored message covers them
 * (a stored answer replaces its stream's live entry; a stored question the live one
 * with the same text).
 */
export function mergeMessages(current: ChatMessage[], stored: StoredMessage[]): ChatMessage[] {
  const old = current.filter((m) => m.id);
  const known = new Set(old.map((m) => m.id));
  // Stored messages do not say which rung a hint was, nor what the guard kept back: keep
  // what the page learned live (or from an earlier merge) about the same answer.
  const seen = new Map(current.filter((m) => m.role === "tutor" && m.stream).map((m) => [m.stream as string, m]));
  const incoming = stored.map((m) => carryHintFacts(seen.get(m.stream ?? ""), fromStored(m)));
  const updated = new Map(incoming.filter((m) => known.has(m.id)).map((m) => [m.id, m]));
  const firstKnown = incoming.findIndex((m) => known.has(m.id));
  let before: ChatMessage[] = [];
  let after: ChatMessage[] = [];
  if (firstKnown >= 0) {
    before = incoming.slice(0, firstKnown).filter((m) => !known.has(m.id));
    after = incoming.slice(firstKnown).filter((m) => !known.has(m.id));
  } else if (old.length && incoming.length && (incoming[incoming.length - 1] as ChatMessage).createdAt < (old[0] as ChatMessage).createdAt) {
    before = incoming;
  } else {
    after = incoming;
  }
  const storedList = [...before, ...old.map((m) => updated.get(m.id) ?? m), ...after];
  const storedStreams = new Set(storedList.map((m) => m.stream).filter(Boolean));
  const questions = storedList.slice(-200).filter((m) => m.role === "learner");
  const live = current.filter((m) => {
    if (m.id) return false;
    if (m.role === "tutor") return !(m.stream && storedStreams.has(m.stream));
    if (m.status === "queued" || m.status === "failed") return true;
    return !questions.some(
      (q) => q.text === m.text && Math.abs(q.createdAt - m.createdAt) < LEARNER_MATCH_WINDOW_MS,
    );
  });
  return [...storedList, ...live];
}

/** `to` with the hint facts of `from` (the same answer, seen live or merged before). */
export function carryHintFacts(from: ChatMessage | undefined, to: ChatMessage): ChatMessage {
  if (!from || from.stream !== to.stream) return to;
  const carried: ChatMessage = { ...to };
  if (from.hintLevel !== undefined) carried.hintLevel = from.hintLevel;
  if (from.problem !== undefined) carried.problem = from.problem;
  if (from.hintOnly !== undefined) carried.hintOnly = from.hintOnly;
  // Character ranges only hold for the same text.
  if (from.withheld?.length && from.text === to.text) carried.withheld = from.withheld;
  return carried;
}

const NO_PROBLEMS: CourseProblems = { course: "", list: null };

export class ChatStore {
  private listeners = new Set<() => void>();
  private snap: ChatSnapshot;
  /** stream -> session, to route deltas. */
  private streamSession = new Map<string, string>();
  private offs: (() => void)[] = [];
  private pendingRefetch = new Set<string>();
  private channel: BroadcastChannel | null = null;
  /** Reads the policy again when its hints-only window opens or closes. */
  private policyTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly client: TutorClient,
    private readonly token: () => string,
    identity: { user: string; courses: string[] },
  ) {
    const courses = identity.courses.length ? identity.courses : ["demo"];
    this.snap = {
      user: identity.user,
      course: courses[0] as string,
      courses,
      current: null,
      sessions: [],
      views: new Map(),
      connection: client.state,
      notice: null,
      predictions: null,
      maxQuestionChars: 4000,
      material: new Map(),
      problems: { ...NO_PROBLEMS, course: courses[0] as string },
      policy: null,
      problem: null,
      attempts: [],
    };
  }

  /** Follow the client's events (and the other tabs); returns the undo. */
  attach(): () => void {
    const client = this.client;
    this.offs.push(
      client.on("state", (s) => this.set({ connection: s })),
      client.on("welcome", (w) => {
        this.set({ maxQuestionChars: w.limits.max_question_chars });
        // The policy may have changed while the page was away.
        void this.refreshPolicy(this.snap.course);
      }),
      client.on("start", (f) => this.onStart(f)),
      client.on("delta", (f) => this.onDelta(f)),
      client.on("feedback", (f) => this.onFeedback(f)),
      client.on("end", (f) => this.onEnd(f)),
      client.on("session", ({ frame, adopted }) => this.onSession(frame, adopted)),
      client.on("error", (f) => this.onError(f)),
      client.on("sent", (f) =>
        this.updateMessage(f.session, `ask:${f.id}`, (m) => (m.status === "queued" ? { ...m, status: "sending" } : m)),
      ),
      client.on("predictions", (f) => this.set({ predictions: f })),
      client.on("document", (f) => this.putMaterial(f.course, withProgress(this.snap.material.get(f.course), f.status))),
    );
    void this.checkCourse(this.snap.course);
    void this.loadProblems(this.snap.course);
    if (typeof BroadcastChannel !== "undefined") {
      // Tabs of one browser tell each other when the session list changed.
      this.channel = new BroadcastChannel("livetutor.sessions");
      this.channel.onmessage = () => void this.refreshSessions();
    }
    return () => this.dispose();
  }

  dispose(): void {
    for (const off of this.offs) off();
    this.offs = [];
    this.channel?.close();
    this.channel = null;
    if (this.policyTimer) clearTimeout(this.policyTimer);
    this.policyTimer = null;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): ChatSnapshot => this.snap;

  private set(patch: Partial<ChatSnapshot>): void {
    this.snap = { ...this.snap, ...patch };
    for (const l of this.listeners) l();
  }

  // -- actions ----------------------------------------------------------------

  /**
   * Choose a course: a new conversation starts in it (the one shown stays in the
   * list), so a question never goes to one course while another's conversation shows.
   */
  setCourse(course: string): void {
    if (course === this.snap.course) return;
    if (this.snap.current) this.leave(this.snap.current);
    this.set({ course, current: null, predictions: null, ...this.problemsReset(course) });
    void this.checkCourse(course);
    void this.loadProblems(course);
  }

  /** Read the course's document list, to tell whether it has material yet. */
  async checkCourse(course: string): Promise<void> {
    try {
      const docs = await api.documents(this.token(), course);
      this.putMaterial(course, withDocuments(this.snap.material.get(course), docs));
    } catch {
      // Not known then: the page claims nothing about the course.
    }
  }

  /** The selector follows the open conversation: its course becomes the selected one. */
  private follow(session: string, course: string): void {
    if (session !== this.snap.current || course === this.snap.course) return;
    this.set({ course, predictions: null, ...this.problemsReset(course) });
    void this.checkCourse(course);
    void this.loadProblems(course);
  }

  private problemsReset(course: string): Partial<ChatSnapshot> {
    return { problems: { course, list: null }, policy: null, problem: null };
  }

  /** Read the course's problems and its policy (again). */
  async loadProblems(course: string): Promise<void> {
    const policy = this.refreshPolicy(course);
    try {
      const list = await api.problems(this.token(), course);
      if (this.snap.course !== course) return;
      const problem = this.snap.problem && list.some((p) => p.id === this.snap.problem) ? this.snap.problem : null;
      this.set({ problems: { course, list }, problem });
    } catch (e) {
      if (this.snap.course !== course) return;
      // A course without problems (or a server without them) shows no problem panel.
      const error = e instanceof ApiError && e.status === 0 ? e.message : undefined;
      this.set({ problems: { course, list: null, error } });
    }
    await policy;
  }

  /** Read the course's tutoring policy: whether hints only hold now. */
  async refreshPolicy(course: string): Promise<void> {
    try {
      const policy = await api.policy(this.token(), course);
      if (this.snap.course !== course || !policy) return;
      this.set({ policy });
      if (this.policyTimer) clearTimeout(this.policyTimer);
      this.policyTimer = null;
      const ms = nextPolicyChangeMs(policy, Date.now());
      if (ms !== null && this.offs.length) {
        this.policyTimer = setTimeout(() => {
          this.policyTimer = null;
          void this.refreshPolicy(course);
        }, ms);
      }
    } catch {
      // Unknown then: the page claims nothing about the policy.
    }
  }

  /** Work on a problem of the selected course (null: none); questions then carry it. */
  selectProblem(problem: string | null): void {
    if (problem !== null && !this.snap.problems.list?.some((p) => p.id === problem)) return;
    if (problem !== this.snap.problem) this.set({ problem });
  }

  /** Send the learner's answer to the selected problem; false when there is none. */
  attempt(text: string): boolean {
    const problem = this.snap.problem;
    const answer = text.trim();
    if (!problem || !answer) return false;
    const course = this.snap.course;
    const id = newId("t-");
    const sent = this.client.sendAttempt({ id, course, problem, text: answer });
    const attempt: Attempt = { id, course, problem, text: answer, status: sent ? "checking" : "failed", at: Date.now() };
    if (!sent) attempt.message = "Not sent: the connection is down. Try again once it is back.";
    this.set({ attempts: withAttempt(this.snap.attempts, attempt) });
    return true;
  }

  async refreshSessions(): Promise<void> {
    try {
      const { sessions } = await api.sessions(this.token());
      this.set({ sessions });
      const current = this.snap.current;
      const listed = current ? sessions.find((s) => s.id === current) : undefined;
      if (listed) this.follow(listed.id, listed.course);
    } catch {
      // The list stays as it was; the connection badge tells what is wrong.
    }
  }

  newChat(): void {
    if (this.snap.current) this.leave(this.snap.current);
    this.set({ current: null, predictions: null });
  }

  /** Stop following a conversation shown no more; it loads afresh when shown again. */
  private leave(id: string): void {
    const view = this.snap.views.get(id);
    if (view?.messages.some((m) => m.status === "streaming" || m.status === "queued" || m.status === "sending")) return;
    this.client.leave(id);
    if (view) this.putView({ ...view, loaded: false });
  }

  /** Show a session: history over HTTP, then live through `open`. */
  async openSession(id: string): Promise<void> {
    const known = this.snap.sessions.find((s) => s.id === id);
    const view = this.snap.views.get(id);
    const previous = this.snap.current;
    if (previous && previous !== id) this.leave(previous);
    this.set({ current: id, predictions: null });
    // Its course, when already known; else the history (or the session list) tells it.
    const course = view && (view.loaded || view.messages.length > 0) ? view.course : known?.course;
    if (course) this.follow(id, course);
    if (!view) {
      this.putView({ id, course: known?.course ?? this.snap.course, title: known?.title ?? "", messages: [], loaded: false });
    }
    this.client.open(id);
    if (!known) void this.refreshSessions();
    if (view?.loaded) return;
    await this.loadHistory(id);
  }

  private async loadHistory(id: string): Promise<void> {
    try {
      const body = await api.messages(this.token(), id, PAGE_SIZE);
      const view = this.snap.views.get(id);
      if (!view) return;
      const hasEarlier = view.loaded ? view.hasEarlier : body.messages.length >= PAGE_SIZE;
      this.putView({ ...view, course: body.course, loaded: true, hasEarlier, error: undefined, messages: mergeMessages(view.messages, body.messages) });
      this.follow(id, body.course);
    } catch (e) {
      const view = this.snap.views.get(id);
      const message = e instanceof Error ? e.message : String(e);
      if (view) this.putView({ ...view, loaded: view.messages.length > 0, error: message });
    }
  }

  /** The page of messages before the oldest one shown. */
  async loadEarlier(id: string): Promise<void> {
    const view = this.snap.views.get(id);
    const oldest = view?.messages.find((m) => m.id)?.id;
    if (!view || !oldest || !view.hasEarlier || view.loadingEarlier) return;
    this.putView({ ...view, loadingEarlier: true });
    try {
      const body = await api.messages(this.token(), id, PAGE_SIZE, oldest);
      const now = this.snap.views.get(id) ?? view;
      this.putView({
        ...now,
        loadingEarlier: false,
        hasEarlier: body.messages.length >= PAGE_SIZE,
        messages: mergeMessages(now.messages, body.messages),
      });
    } catch {
      const now = this.snap.views.get(id) ?? view;
      this.putView({ ...now, loadingEarlier: false });
    }
  }

  /** Ask a question; it is about `problem` (by default the one the learner works on). */
  ask(text: string, mode: Mode, problem: string | null = this.snap.problem): void {
    const course = this.snap.course;
    let session = this.snap.current;
    if (!session) {
      session = newId("s-");
      this.putView({ id: session, course, title: text.slice(0, 80), messages: [], loaded: true });
      this.set({ current: session });
    }
    const id = newId("a-");
    const offline = !this.client.connected;
    this.appendMessage(session, {
      key: `ask:${id}`,
      role: "learner",
      text,
      mode,
      ask: id,
      status: offline ? "queued" : "sending",
      sources: [],
      createdAt: Date.now(),
      ...(problem ? { problem } : {}),
    });
    this.client.ask({ id, session, course, text, mode, ...(problem ? { problem } : {}) });
    this.set({ predictions: null });
  }

  /** Send a failed question again. */
  retry(session: string, key: string): void {
    const view = this.snap.views.get(session);
    const m = view?.messages.find((x) => x.key === key);
    if (!view || !m) return;
    this.putView({ ...view, messages: view.messages.filter((x) => x.key !== key) });
    const previous = this.snap.current;
    this.set({ current: session });
    this.ask(m.text, m.mode ?? "explain", m.problem ?? null);
    this.set({ current: previous });
  }

  cancel(stream: string): void {
    this.client.cancel(stream);
  }

  typing(text: string): void {
    this.client.typing(this.snap.course, text, this.snap.current ?? undefined);
  }

  clearPredictions(): void {
    if (this.snap.predictions) this.set({ predictions: null });
  }

  dismissNotice(): void {
    this.set({ notice: null });
  }

  // -- frames -------------------------------------------------------------------

  private onStart(f: StreamStartFrame): void {
    this.streamSession.set(f.stream, f.session);
    let view = this.snap.views.get(f.session);
    const isNew = !this.snap.sessions.some((s) => s.id === f.session);
    if (!view) {
      if (this.snap.current !== f.session) {
        if (isNew) this.announceSessions();
        return;
      }
      view = { id: f.session, course: f.course, title: f.text ?? "", messages: [], loaded: true };
    }
    let messages = view.messages;
    const mine = messages.findIndex((m) => m.ask === f.ask && m.role === "learner");
    if (mine >= 0) {
      messages = messages.map((m, i) => (i === mine ? { ...m, status: "sent" } : m));
    } else if (f.text) {
      const asked: ChatMessage = { key: `ask:${f.ask}`, role: "learner", text: f.text, mode: f.mode, ask: f.ask, status: "sent", sources: [], createdAt: Date.now() };
      if (f.problem) asked.problem = f.problem;
      messages = [...messages, asked];
    }
    const hint = hintFacts(f);
    const at = messages.findIndex((m) => m.stream === f.stream);
    if (at < 0) {
      messages = [...messages, { ...this.liveAnswer(f.stream, f.ask, "", f.mode), ...hint }];
    } else {
      messages = messages.map((m, i) => (i === at ? { ...m, ...hint } : m));
    }
    this.putView({ ...view, messages });
    this.follow(f.session, f.course);
    if (isNew) this.announceSessions();
    // An explain question answered as a hint: the policy says hints only; show it.
    if (f.hint_only) void this.refreshPolicy(f.course);
  }

  private liveAnswer(stream: string, ask: string, text: string, mode?: Mode): ChatMessage {
    return { key: `stream:${stream}`, role: "tutor", text, mode, ask, stream, status: "streaming", sources: [], createdAt: Date.now() };
  }

  private onDelta(f: DeltaFrame): void {
    const session = this.streamSession.get(f.stream);
    if (!session) return;
    this.updateMessage(session, `stream:${f.stream}`, (m) => ({
      ...m,
      text: m.text + f.text,
      spans: withDelta(m.spans, f.seq, m.text.length, f.text.length),
    }));
  }

  private onEnd(f: StreamEndFrame): void {
    const session = this.streamSession.get(f.stream);
    if (!session) return;
    const found = this.updateMessage(session, `stream:${f.stream}`, (m) => ({
      ...m,
      status: "done",
      reason: f.reason,
      sources: f.sources ?? [],
      model: f.model,
      cached: f.cached,
      fallback: f.fallback,
      takenOver: f.taken_over,
      note: f.message ?? null,
      ...hintFacts(f, m),
      withheld: withheldRanges(m.text, m.spans, f.withheld),
      spans: undefined,
    }));
    if (!found) void this.loadHistory(session);
  }

  private onFeedback(f: FeedbackFrame): void {
    const attempts = updateAttempt(this.snap.attempts, f.ref, { status: "graded", correct: f.correct, message: f.message });
    if (attempts !== this.snap.attempts) this.set({ attempts });
  }

  private onSession(frame: SessionFrame, adopted: Set<string>): void {
    const view = this.snap.views.get(frame.session) ?? {
      id: frame.session,
      course: frame.course,
      title: frame.title,
      messages: [],
      loaded: false,
    };
    let messages = mergeMessages(view.messages, frame.messages);
    for (const s of frame.streams) {
      this.streamSession.set(s.stream, frame.session);
      const at = messages.findIndex((m) => m.stream === s.stream);
      if (at < 0) messages = [...messages, this.liveAnswer(s.stream, s.ask, s.text)];
      // The text up to the frame's seq: the spans of the deltas seen still hold when it
      // only adds to them; the added part's deltas are unknown.
      else if (adopted.has(s.stream)) {
        messages = messages.map((m, i) =>
          i === at ? { ...m, text: s.text, spans: s.text.startsWith(m.text) ? m.spans : undefined } : m,
        );
      }
    }
    // Tutor entries still "streaming" that the server no longer lists ended while we were away.
    const running = new Set(frame.streams.map((s) => s.stream));
    const stale = messages.some((m) => {
      if (m.status !== "streaming" || !m.stream || running.has(m.stream)) return false;
      const tracked = this.client.streams.get(m.stream);
      return !tracked || tracked.ended;
    });
    this.putView({ ...view, title: frame.title || view.title, course: frame.course, messages });
    this.follow(frame.session, frame.course);
    const lastStored = frame.messages[frame.messages.length - 1];
    if ((lastStored?.role === "learner" && frame.streams.length === 0) || stale) {
      // The answer ended between the server's two reads: fetch it once more shortly.
      this.refetchSoon(frame.session);
    }
  }

  private refetchSoon(session: string): void {
    if (this.pendingRefetch.has(session)) return;
    this.pendingRefetch.add(session);
    setTimeout(() => {
      this.pendingRefetch.delete(session);
      void this.loadHistory(session);
    }, 1000);
  }

  private onError(f: ErrorFrame): void {
    const ref = f.ref;
    if (ref?.startsWith("t-")) {
      const attempts = updateAttempt(this.snap.attempts, ref, { status: "failed", message: f.message });
      if (attempts !== this.snap.attempts) this.set({ attempts });
      if (f.code === "problem_unknown") void this.loadProblems(this.snap.course);
      return;
    }
    if (ref?.startsWith("a-")) {
      for (const view of this.snap.views.values()) {
        const hit = view.messages.find((m) => m.key === `ask:${ref}`);
        if (hit) {
          if (f.code === "course_unknown") this.putMaterial(view.course, withRefusal(this.snap.material.get(view.course)));
          if (f.code === "problem_unknown") void this.loadProblems(this.snap.course);
          const note =
            f.code === "rate_limited" && f.retry_after_ms
              ? `Too many questions at once. Try again in ${Math.ceil(f.retry_after_ms / 1000)} s.`
              : f.message;
          this.updateMessage(view.id, hit.key, (m) => ({ ...m, status: "failed", note }));
          return;
        }
      }
    }
    if (ref?.startsWith("r-") && f.code === "stream_unknown") {
      // A stream we followed is no longer replayable: read the stored answers.
      for (const id of this.snap.views.keys()) void this.loadHistory(id);
      return;
    }
    if (ref?.startsWith("o-") && f.code === "session_forbidden") {
      const current = this.snap.current;
      const view = current ? this.snap.views.get(current) : undefined;
      if (view && view.messages.length === 0 && !view.loaded) {
        this.putView({ ...view, error: "This conversation does not exist or belongs to someone else." });
      }
      return;
    }
    if (f.code === "llm_unavailable") {
      this.set({ notice: "The model is unavailable; the offline tutor answers from the course text instead." });
      return;
    }
    if (ref?.startsWith("p-") || ref?.startsWith("o-")) return;
    this.set({ notice: f.message });
  }

  // -- helpers ----------------------------------------------------------------

  private announceSessions(): void {
    void this.refreshSessions();
    this.channel?.postMessage("changed");
  }

  private putMaterial(course: string, material: CourseMaterial): void {
    const all = new Map(this.snap.material);
    all.set(course, material);
    this.set({ material: all });
  }

  private putView(view: SessionView): void {
    const views = new Map(this.snap.views);
    views.set(view.id, view);
    this.set({ views });
  }

  private appendMessage(session: string, message: ChatMessage): void {
    const view = this.snap.views.get(session);
    if (view) this.putView({ ...view, messages: [...view.messages, message] });
  }

  private updateMessage(session: string, key: string, fn: (m: ChatMessage) => ChatMessage): boolean {
    const view = this.snap.views.get(session);
    if (!view) return false;
    // Live entries sit at the end: search from there.
    for (let i = view.messages.length - 1; i >= 0; i--) {
      const m = view.messages[i] as ChatMessage;
      if (m.key === key) {
        const messages = view.messages.slice();
        messages[i] = fn(m);
        this.putView({ ...view, messages });
        return true;
      }
    }
    return false;
  }
}

/** The hint facts of a `stream.start` or `stream.end`, over what `m` knew already. */
function hintFacts(f: StreamStartFrame | StreamEndFrame, m?: ChatMessage): Partial<ChatMessage> {
  const facts: Partial<ChatMessage> = {};
  const level = f.hint_level ?? m?.hintLevel;
  if (level !== undefined) facts.hintLevel = level;
  const problem = ("problem" in f ? f.problem : undefined) ?? m?.problem;
  if (problem !== undefined) facts.problem = problem;
  const hintOnly = f.hint_only ?? m?.hintOnly;
  if (hintOnly !== undefined) facts.hintOnly = hintOnly;
  return facts;
}

/** Longest wait before the policy is read again for a window edge (setTimeout's limit is lower). */
const MAX_POLICY_WAIT_MS = 24 * 3600_000;

/** Milliseconds until the hints-only window opens or closes (plus a second), or null if it never does. */
export function nextPolicyChangeMs(policy: CoursePolicy, nowMs: number): number | null {
  if (policy.mode !== "hint_only") return null;
  const edges = [policy.hint_only_from, policy.hint_only_until]
    .map((t) => (t ? Date.parse(t) : Number.NaN))
    .filter((t) => Number.isFinite(t) && t > nowMs);
  if (!edges.length) return null;
  return Math.min(Math.min(...edges) - nowMs + 1000, MAX_POLICY_WAIT_MS);
}
