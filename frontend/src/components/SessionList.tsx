import type { SessionSummary } from "../lib/api";

interface Props {
  /** All the learner's conversations: the selected course's come first, the others after. */
  sessions: SessionSummary[];
  course: string;
  current: string | null;
  onNew: () => void;
  onPick: () => void;
}

function when(seconds: number): string {
  const d = new Date(seconds * 1000);
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

function Item({ session, current, onPick, showCourse }: { session: SessionSummary; current: string | null; onPick: () => void; showCourse: boolean }) {
  const open = session.id === current;
  return (
    <li>
      <a
        href={`#/s/${session.id}`}
        onClick={onPick}
        aria-current={open ? "page" : undefined}
        data-course={session.course}
        className={`block rounded-md px-2 py-2 text-sm ${
          open ? "bg-blue-50 text-blue-950 ring-1 ring-blue-200" : "text-slate-800 hover:bg-slate-100"
        }`}
      >
        <span className="line-clamp-2">{session.title || "Untitled"}</span>
        <span className="mt-0.5 block text-xs text-slate-600">
          {showCourse && <span className="font-medium text-slate-700">{session.course} · </span>}
          {when(session.updated_at)}
        </span>
      </a>
    </li>
  );
}

export function SessionList({ sessions, course, current, onNew, onPick }: Props) {
  const here = sessions.filter((s) => s.course === course);
  const elsewhere = sessions.filter((s) => s.course !== course);
  return (
    <>
      <div className="p-3">
        <button
          type="button"
          onClick={onNew}
          className="w-full rounded-lg bg-blue-800 px-3 py-2 text-sm font-medium text-white hover:bg-blue-900"
        >
          + New conversation
        </button>
      </div>
      <h2 className="px-4 pb-1 text-xs font-semibold uppercase tracking-wide text-slate-600">Conversations</h2>
      <nav aria-label="Your conversations" className="min-h-0 flex-1 overflow-y-auto px-2 pb-3">
        {here.length === 0 ? (
          <p className="px-2 py-3 text-sm text-slate-600">No conversations in this course yet.</p>
        ) : (
          <ul className="space-y-0.5">
            {here.map((s) => (
              <Item key={s.id} session={s} current={current} onPick={onPick} showCourse={false} />
            ))}
          </ul>
        )}
        {elsewhere.length > 0 && (
          <>
            <h3 className="px-2 pb-1 pt-4 text-xs font-semibold uppercase tracking-wide text-slate-600">Other courses</h3>
            <ul className="space-y-0.5" data-testid="other-courses">
              {elsewhere.map((s) => (
                <Item key={s.id} session={s} current={current} onPick={onPick} showCourse />
              ))}
            </ul>
          </>
        )}
      </nav>
    </>
  );
}
