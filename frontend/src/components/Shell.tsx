import { useEffect, useMemo, useState, useSyncExternalStore } from "react";

import { api } from "../lib/api";
import type { Identity } from "../lib/token";
import { TutorClient, socketUrl } from "../protocol/client";
import { ChatStore } from "../state/chat";
import { courseOptions } from "../state/courses";
import { ChatView } from "./ChatView";
import { ConnectionBadge } from "./ConnectionBadge";
import { SessionList } from "./SessionList";
import { UploadView } from "./UploadView";

interface Props {
  identity: Identity;
  onSignOut: (reason?: string) => void;
}

type Route = { view: "chat"; session: string | null } | { view: "upload" };

function readRoute(): Route {
  const hash = window.location.hash;
  if (hash.startsWith("#/upload")) return { view: "upload" };
  const m = /^#\/s\/([A-Za-z0-9_.:-]{1,64})/.exec(hash);
  return { view: "chat", session: m?.[1] ?? null };
}

function go(hash: string): void {
  if (window.location.hash !== hash) window.location.hash = hash;
}

export function Shell({ identity, onSignOut }: Props) {
  const client = useMemo(
    () =>
      new TutorClient({
        url: socketUrl(window.location),
        token: () => identity.token,
        isActive: () => document.visibilityState === "visible",
        checkAuth: () => api.checkToken(identity.token),
      }),
    [identity.token],
  );
  const store = useMemo(() => new ChatStore(client, () => identity.token, identity), [client, identity]);
  const snap = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const [route, setRoute] = useState<Route>(readRoute);
  const [menuOpen, setMenuOpen] = useState(false);
  const canUpload = identity.role === "instructor" || identity.role === "admin";

  useEffect(() => {
    const detach = store.attach();
    client.start();
    void store.refreshSessions();
    const wake = () => client.wake();
    const onVisible = () => document.visibilityState === "visible" && client.wake();
    window.addEventListener("online", wake);
    window.addEventListener("focus", wake);
    window.addEventListener("keydown", wake);
    window.addEventListener("pointerdown", wake);
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      window.removeEventListener("online", wake);
      window.removeEventListener("focus", wake);
      window.removeEventListener("keydown", wake);
      window.removeEventListener("pointerdown", wake);
      document.removeEventListener("visibilitychange", onVisible);
      client.stop();
      detach();
    };
  }, [client, store]);

  // Back to sign-in when the token runs out, rather than at the next failed request.
  useEffect(() => {
    if (!identity.exp) return;
    const ms = identity.exp * 1000 - Date.now();
    if (ms > 2 ** 31 - 1) return;
    const timer = setTimeout(() => onSignOut("Your sign-in has expired. Please sign in again."), Math.max(ms, 0));
    return () => clearTimeout(timer);
  }, [identity.exp, onSignOut]);

  useEffect(() => {
    if (snap.connection.state === "signed-out") onSignOut("Your sign-in has expired or was refused. Please sign in again.");
  }, [snap.connection.state, onSignOut]);

  // The URL names the open conversation, so a reload (or a second tab) shows it again.
  useEffect(() => {
    const onHash = () => setRoute(readRoute());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    if (route.view !== "chat") return;
    if (route.session && route.session !== snap.current) void store.openSession(route.session);
    if (!route.session && snap.current) store.newChat();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [route]);
  useEffect(() => {
    if (route.view === "chat" && snap.current && route.session !== snap.current) go(`#/s/${snap.current}`);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [snap.current]);

  return (
    <div className="flex h-full flex-col bg-slate-50 text-slate-900">
      <button
        type="button"
        onClick={() => document.getElementById("composer")?.focus()}
        className="sr-only-focusable absolute left-2 top-2 z-50 rounded bg-white px-3 py-2 text-blue-900 shadow"
      >
        Skip to the question box
      </button>
      <header className="flex items-center gap-2 border-b border-slate-200 bg-white px-3 py-2 sm:gap-3 sm:px-4">
        <button
          type="button"
          className="rounded-md p-2 text-slate-700 hover:bg-slate-100 md:hidden"
          aria-label={menuOpen ? "Hide conversations" : "Show conversations"}
          aria-expanded={menuOpen}
          aria-controls="sidebar"
          onClick={() => setMenuOpen((v) => !v)}
        >
          <svg aria-hidden="true" viewBox="0 0 20 20" className="h-5 w-5" fill="currentColor">
            <path d="M3 5h14v2H3zm0 4h14v2H3zm0 4h14v2H3z" />
          </svg>
        </button>
        <span className="flex items-center gap-2 font-semibold">
          <span aria-hidden="true" className="grid h-7 w-7 place-items-center rounded-md bg-blue-900 text-sm font-bold text-white">
            T
          </span>
          <span className="hidden sm:inline">LiveTutor</span>
        </span>
        <label className="ml-1 flex items-center gap-2 text-sm">
          <span className="sr-only sm:not-sr-only text-slate-600">Course</span>
          <select
            value={snap.course}
            onChange={(e) => {
              store.setCourse(e.target.value);
              if (route.view === "chat") go("#/");
            }}
            className="max-w-[9rem] rounded-md border border-slate-300 bg-white px-2 py-1 text-slate-900 sm:max-w-none"
            aria-label="Course"
          >
            {courseOptions(snap.courses, snap.course).map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        {canUpload && (
          <nav aria-label="Views" className="ml-1 flex rounded-md border border-slate-300 text-sm">
            <a
              href={snap.current ? `#/s/${snap.current}` : "#/"}
              aria-current={route.view === "chat" ? "page" : undefined}
              className={`rounded-l-md px-2.5 py-1 ${route.view === "chat" ? "bg-blue-800 text-white" : "text-slate-800 hover:bg-slate-100"}`}
            >
              Chat
            </a>
            <a
              href="#/upload"
              aria-current={route.view === "upload" ? "page" : undefined}
              className={`rounded-r-md px-2.5 py-1 ${route.view === "upload" ? "bg-blue-800 text-white" : "text-slate-800 hover:bg-slate-100"}`}
            >
              Documents
            </a>
          </nav>
        )}
        <div className="ml-auto flex items-center gap-2">
          <ConnectionBadge info={snap.connection} onRetry={() => client.wake()} />
          <span className="hidden text-sm text-slate-700 lg:inline" title={`Signed in as ${identity.user} (${identity.role})`}>
            {identity.user}
          </span>
          <button
            type="button"
            onClick={() => onSignOut()}
            className="rounded-md px-2 py-1 text-sm text-slate-700 hover:bg-slate-100 hover:text-slate-900"
          >
            Sign out
          </button>
        </div>
      </header>
      {snap.notice && (
        <div role="status" className="flex items-start gap-3 border-b border-amber-300 bg-amber-50 px-4 py-2 text-sm text-amber-950">
          <span className="flex-1">{snap.notice}</span>
          <button type="button" className="underline" onClick={() => store.dismissNotice()}>
            Dismiss
          </button>
        </div>
      )}
      <div className="relative flex min-h-0 flex-1">
        <aside
          id="sidebar"
          aria-label="Conversations"
          className={`${menuOpen ? "flex" : "hidden"} absolute inset-y-0 left-0 z-30 w-72 max-w-[85vw] flex-col border-r border-slate-200 bg-white shadow-lg md:static md:flex md:shadow-none`}
        >
          <SessionList
            sessions={snap.sessions}
            course={snap.course}
            current={route.view === "chat" ? snap.current : null}
            onNew={() => {
              store.newChat();
              go("#/");
              setMenuOpen(false);
            }}
            onPick={() => setMenuOpen(false)}
          />
        </aside>
        {menuOpen && (
          <button
            type="button"
            aria-label="Close conversations"
            className="absolute inset-0 z-20 bg-slate-900/30 md:hidden"
            onClick={() => setMenuOpen(false)}
          />
        )}
        <main className="flex min-w-0 flex-1 flex-col">
          {route.view === "upload" && canUpload ? (
            <UploadView identity={identity} client={client} course={snap.course} />
          ) : (
            <ChatView store={store} snap={snap} canUpload={canUpload} />
          )}
        </main>
      </div>
    </div>
  );
}
