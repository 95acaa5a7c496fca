import { useVirtualizer } from "@tanstack/react-virtual";
import {
  type KeyboardEvent,
  Suspense,
  lazy,
  useCallback,
  useEffect,
  useId,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
} from "react";

import { loadIdentity } from "../lib/token";
import type { Mode, Source } from "../protocol/frames";
import type { ChatMessage, ChatSnapshot, ChatStore } from "../state/chat";
import { courseIsEmpty } from "../state/courses";
import { solved } from "../state/hints";
import { Message, type OpenSource } from "./Message";
import { ProblemPanel } from "./ProblemPanel";

// pdf.js comes with the viewer, in a chunk of its own, the first time a source is opened.
const SourceViewer = lazy(() =>
  import("./SourceViewer").catch(() => ({ default: ViewerUnavailable })),
);
// The panel's place: beside the chat from Tailwind's `lg` up (SourceViewer's NARROW is
// the same width), the whole screen below it (phones, small tablets).
const PANEL =
  "fixed inset-0 z-40 flex flex-col bg-white lg:static lg:z-auto lg:w-1/2 lg:max-w-[44rem] lg:border-l lg:border-slate-200";

const EXAMPLES: Record<string, string[]> = {
  demo: [
    "What makes an argument valid?",
    "How is correlation different from causation?",
    "How should I weigh evidence from different sources?",
  ],
};
const TYPING_DEBOUNCE_MS = 300;
const MIN_TYPING_CHARS = 3;

interface Props {
  store: ChatStore;
  snap: ChatSnapshot;
  /** Instructors and admins: an empty course offers the upload. */
  canUpload: boolean;
}

export function ChatView({ store, snap, canUpload }: Props) {
  const view = snap.current ? snap.views.get(snap.current) : undefined;
  const messages = view?.messages ?? [];
  const running = messages.filter((m) => m.status === "streaming" && m.stream);
  const empty = courseIsEmpty(snap.course, snap.material.get(snap.course), snap.sessions);
  const [viewing, setViewing] = useState<Source | null>(null);
  const trigger = useRef<HTMLElement | null>(null);
  const openSource = useCallback<OpenSource>((source, from) => {
    trigger.current = from;
    setViewing(source);
  }, []);
  const closeSource = useCallback(() => {
    setViewing(null);
    // Back to the citation that opened it (or the conversation, if it scrolled away).
    const from = trigger.current;
    if (from?.isConnected) from.focus();
    else document.querySelector<HTMLElement>("[data-testid=message-list]")?.focus();
  }, []);

  return (
    <div className="flex min-h-0 flex-1">
      <div className="flex min-h-0 min-w-0 flex-1 flex-col">
        {view ? (
          <>
            <h1 className="sr-only">{view.title || "Conversation"}</h1>
            {empty && <EmptyCourse canUpload={canUpload} className="border-b px-4 py-2 text-sm" />}
            {view.error && (
              <p role="alert" className="border-b border-red-200 bg-red-50 px-4 py-2 text-sm text-red-900">
                {view.error}
              </p>
            )}
            <MessageList
              key={view.id}
              messages={messages}
              onRetry={(key) => store.retry(view.id, key)}
              loading={!view.loaded}
              hasEarlier={!!view.hasEarlier}
              loadingEarlier={!!view.loadingEarlier}
              onLoadEarlier={() => void store.loadEarlier(view.id)}
              onOpenSource={openSource}
            />
          </>
        ) : (
          <Welcome course={snap.course} empty={empty} canUpload={canUpload} onPick={(q) => store.ask(q, "explain")} />
        )}
        <Announcer messages={messages} />
        <ProblemPanel store={store} snap={snap} />
        <Composer store={store} snap={snap} running={running} />
      </div>
      {viewing && (
        <Suspense
          fallback={
            <div className={`${PANEL} items-center justify-center`} role="status">
              Opening the source…
            </div>
          }
        >
          <SourceViewer
            source={viewing}
            token={loadIdentity()?.token ?? ""}
            onClose={closeSource}
            className={PANEL}
          />
        </Suspense>
      )}
    </div>
  );
}

/** In place of the viewer when its code could not be loaded (offline, or a new release). */
function ViewerUnavailable({ onClose, className }: { onClose: () => void; className: string }) {
  return (
    <div className={`${className} items-center justify-center gap-3 p-6 text-center`} role="alert">
      <p>The source viewer could not be loaded. Check the connection, then reload the page.</p>
      <button type="button" onClick={onClose} className="rounded-md border border-slate-300 px-3 py-1 text-sm">
        Close
      </button>
    </div>
  );
}

/** Says what to do in a course with nothing to answer from yet. */
function EmptyCourse({ canUpload, className }: { canUpload: boolean; className: string }) {
  return (
    <p role="status" data-testid="course-empty" className={`border-amber-300 bg-amber-50 text-amber-950 ${className}`}>
      {canUpload ? (
        <>
          <a href="#/upload" className="font-medium underline">
            Upload a PDF
          </a>{" "}
          to start this course.
        </>
      ) : (
        "This course has no material yet; ask your teacher to add some."
      )}
    </p>
  );
}

function Welcome({
  course,
  empty,
  canUpload,
  onPick,
}: {
  course: string;
  empty: boolean;
  canUpload: boolean;
  onPick: (q: string) => void;
}) {
  const examples = empty ? [] : (EXAMPLES[course] ?? []);
  return (
    <div className="flex min-h-0 flex-1 flex-col items-center justify-center overflow-y-auto px-4 py-8 text-center">
      <h1 className="text-2xl font-semibold text-slate-900">What would you like to understand?</h1>
      {empty ? (
        <EmptyCourse canUpload={canUpload} className="mt-3 max-w-md rounded-lg border px-4 py-3" />
      ) : (
        <p className="mt-2 max-w-md text-slate-700">
          Ask about <span className="font-medium">{course}</span>. Answers stream in as they are written and cite the
          pages they come from. Choose <em>Hint</em> to be nudged toward the answer instead.
        </p>
      )}
      {examples.length > 0 && (
        <ul className="mt-6 flex max-w-xl flex-wrap justify-center gap-2" aria-label="Example questions">
          {examples.map((q) => (
            <li key={q}>
              <button
                type="button"
                onClick={() => onPick(q)}
                className="rounded-full border border-slate-300 bg-white px-3 py-1.5 text-sm text-slate-800 hover:border-blue-700 hover:text-blue-900"
              >
                {q}
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function MessageList({
  messages,
  onRetry,
  loading,
  hasEarlier,
  loadingEarlier,
  onLoadEarlier,
  onOpenSource,
}: {
  messages: ChatMessage[];
  onRetry: (key: string) => void;
  loading: boolean;
  hasEarlier: boolean;
  loadingEarlier: boolean;
  onLoadEarlier: () => void;
  onOpenSource: OpenSource;
}) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  // When older messages are put in front, keep the ones on screen where they were.
  const anchor = useRef<{ first: string; height: number; top: number } | null>(null);
  const [showJump, setShowJump] = useState(false);
  const virtualizer = useVirtualizer({
    count: messages.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => 120,
    overscan: 6,
    getItemKey: (i) => messages[i]?.key ?? i,
  });
  const items = virtualizer.getVirtualItems();
  const total = virtualizer.getTotalSize();
  const last = messages[messages.length - 1];

  // Follow the newest text while the reader is at the bottom; leave them be when they scrolled up.
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const a = anchor.current;
    if (a && messages[0]?.key !== a.first) {
      el.scrollTop = a.top + (el.scrollHeight - a.height);
      anchor.current = null;
      return;
    }
    if (atBottom.current) el.scrollTop = el.scrollHeight;
  }, [messages.length, last?.text.length, last?.status, total]);

  const onScroll = () => {
    const el = scrollRef.current;
    if (!el) return;
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    atBottom.current = bottom;
    setShowJump(!bottom);
    if (el.scrollTop < 400 && hasEarlier && !loadingEarlier) loadEarlier();
  };

  const loadEarlier = () => {
    const el = scrollRef.current;
    if (el && messages[0]) anchor.current = { first: messages[0].key, height: el.scrollHeight, top: el.scrollTop };
    onLoadEarlier();
  };

  return (
    <div className="relative min-h-0 flex-1">
      <div
        ref={scrollRef}
        onScroll={onScroll}
        className="h-full overflow-y-auto overscroll-contain py-3"
        role="log"
        aria-label="Conversation"
        aria-live="off"
        tabIndex={0}
        data-testid="message-list"
        data-count={messages.length}
      >
        {loading && messages.length === 0 && <p className="px-6 py-4 text-slate-600">Loading the conversation…</p>}
        {hasEarlier && (
          <p className="px-6 pb-2 text-center text-sm text-slate-600">
            {loadingEarlier ? (
              "Loading earlier messages…"
            ) : (
              <button type="button" className="underline" onClick={loadEarlier}>
                Show earlier messages
              </button>
            )}
          </p>
        )}
        <div style={{ height: total, position: "relative", width: "100%" }}>
          <div style={{ position: "absolute", top: 0, left: 0, width: "100%", transform: `translateY(${items[0]?.start ?? 0}px)` }}>
            {items.map((item) => {
              const m = messages[item.index] as ChatMessage;
              return (
                <div key={item.key} data-index={item.index} ref={virtualizer.measureElement}>
                  <Message
                    message={m}
                    onRetry={m.status === "failed" ? () => onRetry(m.key) : undefined}
                    onOpenSource={onOpenSource}
                  />
                </div>
              );
            })}
          </div>
        </div>
      </div>
      {showJump && (
        <button
          type="button"
          onClick={() => {
            atBottom.current = true;
            virtualizer.scrollToIndex(messages.length - 1, { align: "end" });
            const el = scrollRef.current;
            if (el) el.scrollTop = el.scrollHeight;
          }}
          className="absolute bottom-3 left-1/2 -translate-x-1/2 rounded-full bg-slate-900 px-3 py-1.5 text-sm text-white shadow-lg"
        >
          ↓ Latest
        </button>
      )}
    </div>
  );
}

/** Reads answers to screen readers sentence by sentence as they stream. */
function Announcer({ messages }: { messages: ChatMessage[] }) {
  const seenStreaming = useRef(new Set<string>());
  let last: ChatMessage | undefined;
  for (let i = messages.length - 1; i >= 0 && !last; i--) if (messages[i]?.role === "tutor") last = messages[i];
  if (last?.status === "streaming") seenStreaming.current.add(last.key);
  const live = last && seenStreaming.current.has(last.key) ? last : undefined;
  const text = live?.text ?? "";
  const sentences = text.match(/[^.!?\n]+[.!?]+(?=\s)|[^\n]+\n/g) ?? [];
  const spoken = sentences.join("");
  const done = live && live.status !== "streaming";
  const rest = done ? text.slice(spoken.length).trim() : "";
  return (
    <div className="sr-only" aria-live="polite" aria-relevant="additions text" data-testid="announcer">
      {live && sentences.map((s, i) => <span key={`${live.key}-${i}`}>{s} </span>)}
      {live && rest && <span key={`${live.key}-rest`}>{rest} </span>}
      {done && <span key={`${live.key}-done`}>{live.reason === "stop" ? "Answer complete." : "Answer ended."}</span>}
    </div>
  );
}

function Composer({ store, snap, running }: { store: ChatStore; snap: ChatSnapshot; running: ChatMessage[] }) {
  const [text, setText] = useState("");
  const [mode, setMode] = useState<Mode>("explain");
  const [active, setActive] = useState(0);
  const [dismissed, setDismissed] = useState<string | null>(null);
  const areaRef = useRef<HTMLTextAreaElement>(null);
  const ids = { list: useId(), hint: useId(), mode: useId(), only: useId() };
  const limit = snap.maxQuestionChars;

  const suggestions = useMemo(() => {
    const p = snap.predictions;
    if (!p || p.text !== text || !text.trim() || dismissed === text) return [];
    return p.items
      .map((item) => (typeof item === "string" ? item : item?.text))
      .filter((s): s is string => typeof s === "string" && s.trim().length > 0 && s !== text)
      .slice(0, 5);
  }, [snap.predictions, text, dismissed]);

  // Typing predictions: tell the server what is typed, debounced.
  useEffect(() => {
    if (text.trim().length < MIN_TYPING_CHARS) {
      store.clearPredictions();
      return;
    }
    const t = setTimeout(() => store.typing(text), TYPING_DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [text, store]);

  useEffect(() => setActive(0), [suggestions.length]);

  // Grow with the text, up to a few lines.
  useLayoutEffect(() => {
    const el = areaRef.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 180)}px`;
  }, [text]);

  const send = () => {
    const question = text.trim();
    if (!question || question.length > limit) return;
    store.ask(question, mode);
    setText("");
    setDismissed(null);
  };

  const accept = (value: string) => {
    setText(value);
    setDismissed(value);
    store.clearPredictions();
    areaRef.current?.focus();
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (suggestions.length) {
      if (e.key === "Tab" && !e.shiftKey) {
        e.preventDefault();
        accept(suggestions[active] as string);
        return;
      }
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        const step = e.key === "ArrowDown" ? 1 : -1;
        setActive((a) => (a + step + suggestions.length) % suggestions.length);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        setDismissed(text);
        return;
      }
    }
    if (e.key === "Escape" && running.length) {
      e.preventDefault();
      for (const m of running) if (m.stream) store.cancel(m.stream);
      return;
    }
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      send();
    }
  };

  const over = text.length > limit;
  const problem = snap.problem ? snap.problems.list?.find((p) => p.id === snap.problem) : undefined;
  // Hints only: say so before the learner asks for an explanation and gets a hint.
  const hintOnly = snap.policy?.course === snap.course && snap.policy.hint_only_now
    ? "Hints only in this course right now"
    : problem?.policy === "hint_only" && !solved(snap.attempts, snap.course, problem.id)
      ? "Hints only for this problem"
      : null;
  return (
    <div className="border-t border-slate-200 bg-white px-3 pb-[max(0.75rem,env(safe-area-inset-bottom))] pt-2 sm:px-6">
      <form
        className="mx-auto max-w-3xl"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <div className="mb-2 flex flex-wrap items-center gap-2">
          <fieldset className="flex rounded-lg border border-slate-300 p-0.5 text-sm" aria-describedby={hintOnly ? `${ids.mode} ${ids.only}` : ids.mode}>
            <legend className="sr-only">Tutoring mode</legend>
            {(["explain", "hint"] as const).map((m) => (
              <label
                key={m}
                className={`cursor-pointer rounded-md px-3 py-1 has-[:focus-visible]:outline-2 has-[:focus-visible]:outline-blue-600 ${
                  mode === m ? "bg-slate-900 text-white" : "text-slate-800 hover:bg-slate-100"
                }`}
              >
                <input type="radio" name="mode" value={m} checked={mode === m} onChange={() => setMode(m)} className="sr-only" />
                {m === "explain" ? "Explain" : "Hint"}
              </label>
            ))}
          </fieldset>
          <span id={ids.mode} className="text-xs text-slate-600">
            {mode === "explain" ? "Full explanation with sources" : "A nudge, not the answer"}
          </span>
          {hintOnly && (
            <span id={ids.only} data-testid="hint-only-notice" className="rounded-full bg-indigo-100 px-2 py-0.5 text-xs font-medium text-indigo-950">
              {hintOnly}
            </span>
          )}
          {running.length > 0 && (
            <button
              type="button"
              onClick={() => running.forEach((m) => m.stream && store.cancel(m.stream))}
              className="ml-auto flex items-center gap-1.5 rounded-lg border border-slate-400 px-3 py-1 text-sm font-medium text-slate-900 hover:bg-slate-100"
              data-testid="stop"
            >
              <span aria-hidden="true" className="h-2.5 w-2.5 rounded-sm bg-slate-900" />
              Stop
            </button>
          )}
        </div>
        <div className="relative">
          {suggestions.length > 0 && (
            <ul
              id={ids.list}
              role="listbox"
              aria-label="Suggestions"
              className="absolute bottom-full left-0 right-0 z-10 mb-1 overflow-hidden rounded-lg border border-slate-300 bg-white shadow-lg"
              data-testid="predictions"
            >
              {suggestions.map((s, i) => (
                <li
                  key={s}
                  id={`${ids.list}-${i}`}
                  role="option"
                  aria-selected={i === active}
                  onMouseDown={(e) => e.preventDefault()}
                  onClick={() => accept(s)}
                  className={`cursor-pointer px-3 py-2 text-sm ${i === active ? "bg-blue-50 text-blue-950" : "text-slate-800"}`}
                >
                  {s}
                </li>
              ))}
              <li role="presentation" className="border-t border-slate-100 px-3 py-1 text-xs text-slate-600">
                Tab to accept · ↑↓ to choose · Esc to dismiss
              </li>
            </ul>
          )}
          <div className="flex items-end gap-2">
            <label htmlFor="composer" className="sr-only">
              Your question
            </label>
            <textarea
              id="composer"
              ref={areaRef}
              rows={1}
              value={text}
              onChange={(e) => setText(e.target.value)}
              onKeyDown={onKeyDown}
              placeholder={problem ? "Ask about this problem…" : `Ask about ${snap.course}…`}
              aria-describedby={ids.hint}
              aria-autocomplete="list"
              aria-controls={suggestions.length ? ids.list : undefined}
              aria-activedescendant={suggestions.length ? `${ids.list}-${active}` : undefined}
              aria-invalid={over || undefined}
              className="min-h-[2.75rem] flex-1 resize-none rounded-xl border border-slate-400 bg-white px-3 py-2.5 text-slate-900 placeholder:text-slate-500 focus:border-blue-700"
            />
            <button
              type="submit"
              disabled={!text.trim() || over}
              className="h-[2.75rem] rounded-xl bg-blue-800 px-4 font-medium text-white hover:bg-blue-900 disabled:bg-slate-400"
            >
              Send
            </button>
          </div>
          <p id={ids.hint} className="mt-1 text-xs text-slate-600">
            {over ? (
              <span className="text-red-800">
                {text.length} of {limit} characters: shorten your question.
              </span>
            ) : (
              <>Enter to send · Shift+Enter for a new line{running.length > 0 && " · Esc to stop"}</>
            )}
          </p>
        </div>
      </form>
    </div>
  );
}
