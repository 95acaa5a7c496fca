import { useEffect, useState } from "react";

import type { StateInfo } from "../protocol/client";

const LOOK: Record<StateInfo["state"], { label: string; dot: string; text: string }> = {
  idle: { label: "Offline", dot: "bg-slate-400", text: "text-slate-700" },
  connecting: { label: "Connecting…", dot: "bg-amber-500", text: "text-amber-900" },
  connected: { label: "Connected", dot: "bg-emerald-600", text: "text-emerald-900" },
  reconnecting: { label: "Reconnecting…", dot: "bg-amber-500", text: "text-amber-900" },
  resumed: { label: "Resumed", dot: "bg-emerald-600", text: "text-emerald-900" },
  paused: { label: "Paused", dot: "bg-slate-400", text: "text-slate-700" },
  "signed-out": { label: "Signed out", dot: "bg-red-600", text: "text-red-900" },
};

/** The connection state, always visible; announced politely when it changes. */
export function ConnectionBadge({ info, onRetry }: { info: StateInfo; onRetry: () => void }) {
  const [showResumed, setShowResumed] = useState(false);
  useEffect(() => {
    if (info.state !== "resumed") return;
    setShowResumed(true);
    const t = setTimeout(() => setShowResumed(false), 4000);
    return () => clearTimeout(t);
  }, [info]);
  const state = info.state === "resumed" && !showResumed ? "connected" : info.state;
  const look = LOOK[state];
  let detail = "";
  if (state === "reconnecting" && info.retryInMs && info.retryInMs > 1500) {
    detail = ` (retry in ${Math.round(info.retryInMs / 1000)} s)`;
  } else if (state === "resumed" && info.resumed) {
    detail = ` (${info.resumed} answer${info.resumed > 1 ? "s" : ""} continued)`;
  } else if (state === "paused") {
    detail = " (idle)";
  }
  const waiting = state === "reconnecting" || state === "paused";
  return (
    <div className="flex items-center gap-1.5">
      <span
        role="status"
        aria-live="polite"
        data-state={state}
        data-testid="connection-state"
        className={`flex items-center gap-1.5 rounded-full bg-slate-100 px-2.5 py-1 text-xs font-medium ${look.text}`}
      >
        <span aria-hidden="true" className={`h-2 w-2 rounded-full ${look.dot} ${waiting ? "animate-pulse" : ""}`} />
        <span>
          {look.label}
          <span className="hidden sm:inline">{detail}</span>
        </span>
        {info.queued > 0 && <span className="text-slate-700">· {info.queued} waiting</span>}
      </span>
      {waiting && (
        <button type="button" onClick={onRetry} className="rounded px-1.5 py-0.5 text-xs text-blue-900 underline">
          Retry now
        </button>
      )}
    </div>
  );
}
