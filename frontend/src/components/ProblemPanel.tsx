import { useId, useRef, useState } from "react";

import type { Problem, TutoringPolicy } from "../lib/api";
import { MathText } from "../lib/mathFormula";
import type { ChatSnapshot, ChatStore } from "../state/chat";
import type { Attempt } from "../state/hints";

/** "Page 3", "Pages 2, 5"; empty when the problem names no page. */
export function pagesLabel(pages: readonly number[]): string {
  if (!pages.length) return "";
  return `${pages.length === 1 ? "Page" : "Pages"} ${pages.join(", ")}`;
}

const POLICY: Record<TutoringPolicy, string> = {
  open: "Hints and explanations",
  hint_only: "Hints only",
};

function PolicyBadge({ policy }: { policy: TutoringPolicy }) {
  return (
    <span
      data-testid="problem-policy"
      className={`rounded-full px-2 py-0.5 ${policy === "hint_only" ? "bg-indigo-100 text-indigo-950" : "bg-slate-100 text-slate-700"}`}
    >
      {POLICY[policy] ?? policy}
    </span>
  );
}

/**
 * The selected course's problems: choose one to work on (questions then carry it, and
 * hints climb its ladder), answer it in "Your answer" and read the grade.
 */
export function ProblemPanel({ store, snap }: { store: ChatStore; snap: ChatSnapshot }) {
  const [open, setOpen] = useState(false);
  const ids = { heading: useId(), list: useId() };
  const toggle = useRef<HTMLButtonElement>(null);
  const list = snap.problems.course === snap.course ? snap.problems.list : null;
  if (!list?.length) return null;
  const chosen = list.find((p) => p.id === snap.problem);

  const choose = (problem: Problem) => {
    store.selectProblem(problem.id);
    setOpen(false);
    // The next step is a question or an answer about it: the question box is where to be.
    requestAnimationFrame(() => document.getElementById("composer")?.focus());
  };

  return (
    <section
      aria-labelledby={ids.heading}
      className="border-t border-slate-200 bg-slate-50 px-3 sm:px-6"
      data-testid="problem-panel"
    >
      <div className="mx-auto max-w-3xl py-2">
        <div className="flex flex-wrap items-center gap-x-3 gap-y-1">
          <h2 id={ids.heading} className="text-sm font-semibold text-slate-900">
            <button
              type="button"
              aria-expanded={open}
              aria-controls={ids.list}
              ref={toggle}
              onClick={() => setOpen((v) => !v)}
              className="flex items-center gap-1 rounded-md px-1 py-0.5 hover:bg-slate-200"
              data-testid="problems-toggle"
            >
              <svg aria-hidden="true" viewBox="0 0 20 20" className={`h-4 w-4 transition-transform ${open ? "rotate-90" : ""}`} fill="currentColor">
                <path d="M7 4l6 6-6 6z" />
              </svg>
              Problems ({list.length})
            </button>
          </h2>
          {chosen ? (
            <>
              <p
                className="order-last w-full min-w-0 truncate text-sm text-slate-800 sm:order-none sm:w-auto sm:flex-1"
                data-testid="working-on"
              >
                <span className="font-medium">Working on:</span> <MathText text={chosen.statement} />
              </p>
              <button
                type="button"
                onClick={() => {
                  store.selectProblem(null);
                  // The button goes away with the choice: keep the focus in the panel.
                  toggle.current?.focus();
                }}
                className="ml-auto rounded-md border border-slate-300 bg-white px-2 py-0.5 text-sm text-slate-800 hover:bg-slate-100 sm:ml-0"
              >
                Stop working on it
              </button>
            </>
          ) : (
            <p className="text-sm text-slate-700">Choose one to work on: hints then lead you through it.</p>
          )}
        </div>
        {open && (
          <ul id={ids.list} aria-label={`Problems of ${snap.course}`} className="mt-2 max-h-[40vh] space-y-2 overflow-y-auto pr-1">
            {list.map((p) => (
              <li key={p.id}>
                <ProblemCard problem={p} chosen={p.id === snap.problem} onChoose={() => choose(p)} />
              </li>
            ))}
          </ul>
        )}
        {chosen && (
          <AttemptBox
            key={chosen.id}
            problem={chosen}
            attempts={snap.attempts.filter((a) => a.course === snap.course && a.problem === chosen.id)}
            onAttempt={(text) => store.attempt(text)}
          />
        )}
      </div>
    </section>
  );
}

function ProblemCard({ problem, chosen, onChoose }: { problem: Problem; chosen: boolean; onChoose: () => void }) {
  const statementId = useId();
  const pages = pagesLabel(problem.pages);
  return (
    <div
      className={`rounded-lg border bg-white p-3 ${chosen ? "border-blue-700 ring-1 ring-blue-700" : "border-slate-300"}`}
      data-testid="problem"
      data-problem={problem.id}
    >
      <p id={statementId} className="whitespace-pre-wrap break-words text-sm text-slate-900">
        <MathText text={problem.statement} />
      </p>
      <div className="mt-2 flex flex-wrap items-center gap-2 text-xs">
        {pages && <span className="text-slate-700">{pages}</span>}
        <PolicyBadge policy={problem.policy} />
        <button
          type="button"
          aria-pressed={chosen}
          aria-describedby={statementId}
          onClick={onChoose}
          className={`ml-auto rounded-md px-3 py-1 text-sm font-medium ${
            chosen ? "bg-blue-800 text-white" : "border border-blue-800 text-blue-900 hover:bg-blue-50"
          }`}
        >
          {chosen ? "Working on this" : "Work on this"}
        </button>
      </div>
    </div>
  );
}

function AttemptBox({
  problem,
  attempts,
  onAttempt,
}: {
  problem: Problem;
  attempts: Attempt[];
  onAttempt: (text: string) => boolean;
}) {
  const [text, setText] = useState("");
  const inputId = useId();
  const last = attempts[attempts.length - 1];
  const checking = last?.status === "checking";
  return (
    <div className="mt-2" data-testid="attempt-box">
      <form
        className="flex flex-wrap items-center gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          if (checking || !text.trim()) return;
          if (onAttempt(text)) setText("");
        }}
      >
        <label htmlFor={inputId} className="text-sm font-medium text-slate-900">
          Your answer
        </label>
        <input
          id={inputId}
          value={text}
          onChange={(e) => setText(e.target.value)}
          autoComplete="off"
          maxLength={500}
          className="min-w-0 flex-1 rounded-lg border border-slate-400 bg-white px-3 py-1.5 text-slate-900 focus:border-blue-700"
          data-problem={problem.id}
        />
        <button
          type="submit"
          disabled={!text.trim() || checking}
          className="rounded-lg bg-blue-800 px-3 py-1.5 text-sm font-medium text-white hover:bg-blue-900 disabled:bg-slate-400"
        >
          Check
        </button>
      </form>
      <div aria-live="polite" aria-atomic="true" data-testid="feedback" className="mt-1 text-sm">
        {last && <Feedback attempt={last} />}
      </div>
    </div>
  );
}

/** The server's advice without a first word that repeats the grade ("Not yet. Re-read…"). */
export function advice(message: string | undefined, label: string): string {
  const text = (message ?? "").trim();
  const lead = new RegExp(`^${label}[.!:;,]?\\s*`, "i");
  return text.replace(lead, "");
}

function Feedback({ attempt }: { attempt: Attempt }) {
  if (attempt.status === "checking") return <p className="text-slate-700">Checking “{attempt.text}”…</p>;
  if (attempt.status === "failed") {
    return (
      <p className="text-slate-800" data-result="failed">
        <span className="font-semibold">Not checked.</span> {attempt.message}
      </p>
    );
  }
  const label = attempt.correct ? "Correct" : "Not yet";
  const next = advice(attempt.message, label);
  return (
    <p
      data-result={attempt.correct ? "correct" : "not-yet"}
      className={`rounded-md px-2 py-1 ${attempt.correct ? "bg-green-50 text-green-900" : "bg-amber-50 text-amber-950"}`}
    >
      <span className="font-semibold">{label}.</span>
      {next && <> {next}</>} <span className="text-slate-700">Your answer: “{attempt.text}”</span>
    </p>
  );
}
