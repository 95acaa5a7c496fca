import type { SessionSummary } from "../lib/api";

interface Props {
  sessions: SessionSummary[];
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

export function SessionList({ sessions, current, onNew, onPick }: Props) {
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
        {sessions.length === 0 ? (
          <p className="px-2 py-3 text-sm text-slate-600">No conversations in this course yet.</p>
        ) : (
          <ul className="space-y-0.5">
            {sessions.map((s) => (
              <li key={s.id}>
                <a
                  href={`#/s/${s.id}`}
                  onClick={onPick}
                  aria-current={s.id === current ? "page" : undefined}
                  className={`block rounded-md px-2 py-2 text-sm ${
                    s.id === current ? "bg-blue-50 text-blue-950 ring-1 ring-blue-200" : "text-slate-800 hover:bg-slate-100"
                  }`}
                >
                  <span className="line-clamp-2">{s.title || "Untitled"}</span>
                  <span className="mt-0.5 block text-xs text-slate-600">{when(s.updated_at)}</span>
                </a>
              </li>
            ))}
          </ul>
        )}
      </nav>
    </>
  );
}
