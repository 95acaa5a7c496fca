import { type FormEvent, useCallback, useEffect, useId, useRef, useState } from "react";

import { ApiError, type CourseDocument, type DocumentStatus, api } from "../lib/api";
import type { Identity } from "../lib/token";
import type { TutorClient } from "../protocol/client";

const POLL_MS = 1500;
const MAX_BYTES = 50 * 1024 * 1024;
const FINAL: DocumentStatus[] = ["ready", "failed"];

interface Row extends CourseDocument {
  label: string;
}

const STATUS_TEXT: Record<DocumentStatus, string> = {
  queued: "Waiting to be indexed",
  indexing: "Indexing",
  ready: "Ready",
  failed: "Failed",
};

function label(d: CourseDocument, fallback = ""): string {
  return d.name ?? d.filename ?? d.title ?? (fallback || d.id);
}

/** Instructors upload a PDF to a course and watch it being indexed. */
export function UploadView({ identity, client, course }: { identity: Identity; client: TutorClient; course: string }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [unavailable, setUnavailable] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  const ids = { file: useId(), help: useId() };

  const merge = useCallback((update: Partial<Row> & { id: string }) => {
    setRows((old) => {
      const at = old.findIndex((r) => r.id === update.id);
      if (at < 0) return [{ status: "queued", label: update.id, ...update } as Row, ...old];
      const next = old.slice();
      next[at] = { ...(old[at] as Row), ...update };
      return next;
    });
  }, []);

  useEffect(() => {
    let live = true;
    setRows([]);
    setUnavailable(false);
    api.documents(identity.token, course).then(
      (docs) => live && setRows(docs.map((d) => ({ ...d, label: label(d) }))),
      (e: unknown) => {
        if (!live || !(e instanceof ApiError)) return;
        // A server without the documents API answers its plain 404, not a JSON error.
        if (e.status === 405 || (e.status === 404 && e.code === "http")) setUnavailable(true);
        else setError(e.message);
      },
    );
    return () => {
      live = false;
    };
  }, [identity.token, course]);

  // Progress arrives on the socket; polling covers a socket that is down.
  useEffect(
    () =>
      client.on("document", (f) => {
        if (f.course !== course) return;
        merge({ id: f.document, status: f.status, progress: f.progress, reason: f.reason ?? null });
      }),
    [client, course, merge],
  );
  const pending = rows.filter((r) => !FINAL.includes(r.status)).map((r) => r.id);
  const pendingKey = pending.join(",");
  useEffect(() => {
    if (!pendingKey) return;
    const timer = setInterval(() => {
      for (const id of pendingKey.split(",")) {
        api.document(identity.token, id).then(
          (d) => merge({ id, status: d.status, progress: d.progress, reason: d.reason ?? null }),
          () => undefined,
        );
      }
    }, POLL_MS);
    return () => clearInterval(timer);
  }, [pendingKey, identity.token, merge]);

  const upload = async (e: FormEvent) => {
    e.preventDefault();
    if (!file) return;
    if (file.size > MAX_BYTES) {
      setError("That file is larger than 50 MB.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const made = await api.uploadDocument(identity.token, course, file);
      merge({ id: made.id, status: made.status, progress: 0, label: file.name, course });
      setFile(null);
      if (inputRef.current) inputRef.current.value = "";
    } catch (err) {
      setError(err instanceof ApiError ? err.message : "The upload failed.");
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="min-h-0 flex-1 overflow-y-auto px-4 py-6 sm:px-8">
      <div className="mx-auto max-w-2xl">
        <h1 className="text-xl font-semibold text-slate-900">Course documents: {course}</h1>
        <p className="mt-1 text-slate-700">
          Upload a PDF; once it is indexed the tutor answers from it and cites its pages.
        </p>
        {unavailable && (
          <p role="status" className="mt-4 rounded-lg border border-amber-400 bg-amber-50 px-3 py-2 text-amber-950">
            This server does not accept document uploads yet.
          </p>
        )}
        <form onSubmit={upload} className="mt-5 rounded-xl bg-white p-4 shadow-sm ring-1 ring-slate-200">
          <label htmlFor={ids.file} className="block text-sm font-medium text-slate-800">
            PDF file
          </label>
          <input
            id={ids.file}
            ref={inputRef}
            type="file"
            accept="application/pdf,.pdf"
            aria-describedby={ids.help}
            onChange={(e) => setFile(e.target.files?.[0] ?? null)}
            className="mt-1 block w-full text-sm text-slate-800 file:mr-3 file:rounded-md file:border-0 file:bg-slate-100 file:px-3 file:py-2 file:text-slate-900 hover:file:bg-slate-200"
          />
          <p id={ids.help} className="mt-1 text-xs text-slate-600">
            Up to 50 MB. You need the instructor role for this course.
          </p>
          {error && (
            <p role="alert" className="mt-3 text-sm text-red-800">
              {error}
            </p>
          )}
          <button
            type="submit"
            disabled={!file || busy}
            className="mt-3 rounded-lg bg-blue-800 px-4 py-2 text-sm font-medium text-white hover:bg-blue-900 disabled:bg-slate-400"
          >
            {busy ? "Uploading…" : "Upload"}
          </button>
        </form>

        <h2 className="mt-8 text-sm font-semibold uppercase tracking-wide text-slate-600">Documents</h2>
        {rows.length === 0 ? (
          <p className="mt-2 text-sm text-slate-600">No documents uploaded to this course yet.</p>
        ) : (
          <ul className="mt-2 space-y-2" data-testid="documents">
            {rows.map((r) => {
              const pct = Math.round(Math.min(Math.max(r.progress ?? (r.status === "ready" ? 1 : 0), 0), 1) * 100);
              return (
                <li key={r.id} className="rounded-lg bg-white p-3 shadow-sm ring-1 ring-slate-200" data-testid="document" data-status={r.status}>
                  <div className="flex items-center justify-between gap-3">
                    <span className="truncate font-medium text-slate-900">{r.label || label(r)}</span>
                    <span
                      className={`shrink-0 text-sm ${r.status === "failed" ? "text-red-800" : r.status === "ready" ? "text-emerald-800" : "text-slate-700"}`}
                    >
                      {STATUS_TEXT[r.status] ?? r.status}
                      {r.status === "indexing" && ` ${pct}%`}
                    </span>
                  </div>
                  {!FINAL.includes(r.status) && (
                    <div
                      role="progressbar"
                      aria-label={`Indexing ${r.label}`}
                      aria-valuemin={0}
                      aria-valuemax={100}
                      aria-valuenow={pct}
                      className="mt-2 h-2 overflow-hidden rounded-full bg-slate-200"
                    >
                      <div className="h-full rounded-full bg-blue-700 transition-[width]" style={{ width: `${pct}%` }} />
                    </div>
                  )}
                  {r.status === "failed" && r.reason && <p className="mt-1 text-sm text-red-800">{r.reason}</p>}
                </li>
              );
            })}
          </ul>
        )}
      </div>
    </div>
  );
}
