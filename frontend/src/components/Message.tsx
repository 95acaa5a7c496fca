import { memo } from "react";

import { Markdown } from "../lib/markdown";
import { MathText } from "../lib/mathFormula";
import type { Source } from "../protocol/frames";
import type { ChatMessage } from "../state/chat";
import { hintLabel } from "../state/hints";

/** Opens a cited source in the viewer; ``trigger`` gets the focus back when it closes. */
export type OpenSource = (source: Source, trigger: HTMLElement) => void;

const REASONS: Record<string, string> = {
  cancelled: "Stopped",
  error: "The answer failed",
  interrupted: "Interrupted: the server restarted before the answer finished",
  length: "Cut short: the answer took too long",
};

function Citations({ message, onOpenSource }: { message: ChatMessage; onOpenSource?: OpenSource }) {
  if (!message.sources.length) return null;
  return (
    <section aria-label="Sources" className="mt-3 border-t border-slate-200 pt-2" data-testid="citations">
      <h3 className="text-xs font-semibold uppercase tracking-wide text-slate-600">Sources</h3>
      <ol className="mt-1 space-y-1.5">
        {message.sources.map((s, i) => (
          <li
            key={`${s.document}-${s.page}-${i}`}
            value={s.n ?? i + 1}
            className="flex gap-2 text-sm"
            data-testid="citation"
          >
            {/* The passage's number in the prompt: the answer cites it as [n]. */}
            <span aria-hidden="true" className="mt-0.5 grid h-5 min-w-5 place-items-center rounded bg-blue-100 px-1 text-xs font-semibold text-blue-900">
              {s.n ?? i + 1}
            </span>
            <div className="min-w-0">
              {onOpenSource && s.document_id ? (
                <button
                  type="button"
                  onClick={(e) => onOpenSource(s, e.currentTarget)}
                  className="text-left text-blue-900 underline decoration-blue-300 underline-offset-2 hover:decoration-blue-900"
                  title={`Open page ${s.page} with the cited text highlighted`}
                  data-testid="open-source"
                >
                  <span className="font-medium">{s.document}</span>, page {s.page}
                  {s.heading && <> · {s.heading}</>}
                </button>
              ) : (
                <p className="text-slate-900">
                  <span className="font-medium">{s.document}</span>
                  <span className="text-slate-700">, page {s.page}</span>
                  {s.heading && <span className="text-slate-700"> · {s.heading}</span>}
                </p>
              )}
              {s.snippet && (
                <p className="line-clamp-2 text-slate-600" title={s.snippet}>
                  “{s.snippet}”
                </p>
              )}
            </div>
          </li>
        ))}
      </ol>
    </section>
  );
}

function Badges({ message }: { message: ChatMessage }) {
  const items: { text: string; tone: "info" | "warn" }[] = [];
  if (message.reason && REASONS[message.reason]) items.push({ text: REASONS[message.reason] as string, tone: "warn" });
  if (message.fallback) items.push({ text: "Model unavailable: offline answer", tone: "warn" });
  if (message.takenOver) items.push({ text: "Finished by another server", tone: "info" });
  if (message.cached) items.push({ text: "From cache", tone: "info" });
  if (message.model === "offline" && message.status === "done") items.push({ text: "Offline tutor", tone: "info" });
  const hint = message.mode === "hint" || message.hintLevel !== undefined;
  if (!items.length && !message.note && !hint) return null;
  return (
    <div className="mt-2 flex flex-wrap items-center gap-1.5 text-xs">
      {hint && (
        <span data-testid="hint-level" className="rounded-full bg-indigo-100 px-2 py-0.5 font-medium text-indigo-950">
          {hintLabel(message.hintLevel)}
        </span>
      )}
      {items.map((b) => (
        <span
          key={b.text}
          data-testid="badge"
          className={`rounded-full px-2 py-0.5 ${b.tone === "warn" ? "bg-amber-100 text-amber-950" : "bg-slate-100 text-slate-700"}`}
        >
          {b.text}
        </span>
      ))}
      {message.note && message.reason !== "stop" && <span className="text-slate-700">{message.note}</span>}
    </div>
  );
}

interface Props {
  message: ChatMessage;
  onRetry?: () => void;
  onOpenSource?: OpenSource;
}

export const Message = memo(function Message({ message, onRetry, onOpenSource }: Props) {
  if (message.role === "learner") {
    return (
      <div className="flex justify-end px-3 py-2 sm:px-6" data-testid="learner-message">
        <div className="max-w-[85%] sm:max-w-[75%]">
          <div className="whitespace-pre-wrap break-words rounded-2xl rounded-br-md bg-blue-800 px-4 py-2.5 text-white">
            <MathText text={message.text} />
          </div>
          <p className="mt-1 text-right text-xs text-slate-600">
            {message.mode === "hint" && <span>Hint{message.status !== "sent" && message.status !== "done" && " · "}</span>}
            {message.status === "queued" && <span>Waiting for the connection…</span>}
            {message.status === "sending" && <span>Sending…</span>}
            {message.status === "failed" && (
              <span className="text-red-800">
                Not sent{message.note ? `: ${message.note}` : ""}{" "}
                {onRetry && (
                  <button type="button" onClick={onRetry} className="font-medium underline">
                    Try again
                  </button>
                )}
              </span>
            )}
          </p>
        </div>
      </div>
    );
  }
  const streaming = message.status === "streaming";
  return (
    <div className="flex gap-3 px-3 py-2 sm:px-6" data-testid="tutor-message" data-status={message.status} data-stream={message.stream}>
      <span aria-hidden="true" className="mt-1 grid h-8 w-8 shrink-0 place-items-center rounded-full bg-slate-800 text-sm font-semibold text-white">
        T
      </span>
      <article
        aria-busy={streaming}
        aria-label="Tutor answer"
        className="min-w-0 max-w-[min(100%,48rem)] flex-1 rounded-2xl rounded-tl-md bg-white px-4 py-3 text-slate-900 shadow-sm ring-1 ring-slate-200"
      >
        {message.hintOnly && (
          <p className="mb-2 text-sm text-slate-700" data-testid="hint-only-answer">
            Answered with a hint: hints only here right now.
          </p>
        )}
        {message.text ? (
          <div className={streaming ? "streaming" : undefined} data-testid="answer-text">
            <Markdown text={message.text} keptBack={streaming ? undefined : message.withheld} />
          </div>
        ) : streaming ? (
          <p className="text-slate-600" data-testid="answer-text">
            Thinking<span className="caret" aria-hidden="true" />
          </p>
        ) : (
          <p className="text-slate-600" data-testid="answer-text">
            (no answer)
          </p>
        )}
        <Badges message={message} />
        <Citations message={message} onOpenSource={onOpenSource} />
      </article>
    </div>
  );
});
