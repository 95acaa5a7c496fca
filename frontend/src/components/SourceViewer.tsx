// The source viewer: a cited PDF opened at the cited page, the cited text highlighted.
// Loaded on demand (React.lazy in ChatView) so pdf.js stays out of the entry chunk.

import { GlobalWorkerOptions, type PDFDocumentProxy, type RenderTask, TextLayer, getDocument } from "pdfjs-dist";
import workerUrl from "pdfjs-dist/build/pdf.worker.min.mjs?url";
import { type KeyboardEvent, useEffect, useId, useRef, useState } from "react";

import { ApiError, api } from "../lib/api";
import { type SnippetMatch, findSnippet } from "../lib/snippet";
import type { Source } from "../protocol/frames";
import "./SourceViewer.css";

GlobalWorkerOptions.workerSrc = workerUrl;

// Below Tailwind's `lg` the viewer covers the screen (ChatView's PANEL) and holds the focus.
const NARROW = "(max-width: 1023px)";
// Page widths, as multiples of the panel's width.
const ZOOMS = [1, 1.5, 2, 3];

export interface SourceViewerProps {
  /** The citation to show; it has a ``document_id``. */
  source: Source;
  token: string;
  onClose: () => void;
  /** The panel's size and place (beside the chat, or the whole screen on a phone). */
  className: string;
}

type Found = "whole" | "part" | "none";

function useNarrow(): boolean {
  const [narrow, setNarrow] = useState(() => window.matchMedia(NARROW).matches);
  useEffect(() => {
    const query = window.matchMedia(NARROW);
    const onChange = () => setNarrow(query.matches);
    query.addEventListener("change", onChange);
    return () => query.removeEventListener("change", onChange);
  }, []);
  return narrow;
}

function problem(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 404) return "This document is no longer available to you.";
    if (e.status === 401) return "Your sign-in has expired. Please sign in again.";
    return e.message;
  }
  return "The PDF could not be shown.";
}

export default function SourceViewer({ source, token, onClose, className }: SourceViewerProps) {
  const documentId = source.document_id ?? "";
  const title = source.title || source.document;
  const [pdf, setPdf] = useState<PDFDocumentProxy | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [drawFailed, setDrawFailed] = useState(false);
  const [page, setPage] = useState(source.page);
  const [width, setWidth] = useState(0);
  const [zoom, setZoom] = useState(0);
  const [found, setFound] = useState<Found | null>(null);
  const [rendering, setRendering] = useState(true);
  const panelRef = useRef<HTMLDivElement>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);
  const scrollRef = useRef<HTMLDivElement>(null);
  const pageRef = useRef<HTMLDivElement>(null);
  // The document being shown; a page still drawing from one closed since fails quietly.
  const shown = useRef<PDFDocumentProxy | null>(null);
  const headingId = useId();
  const narrow = useNarrow();
  const pages = pdf?.numPages ?? 0;

  // Focus moves into the viewer when it opens.
  useEffect(() => headingRef.current?.focus(), []);

  // Esc closes it from inside the viewer, or when the focus was lost (on the page's body).
  useEffect(() => {
    const onKey = (e: globalThis.KeyboardEvent) => {
      const at = document.activeElement;
      const lost = !at || at === document.body;
      if (e.key === "Escape" && !e.defaultPrevented && (lost || panelRef.current?.contains(at))) {
        e.preventDefault();
        onClose();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [onClose]);

  // Another citation while open: go to its page.
  useEffect(() => setPage(source.page), [source]);

  // The file, with the page's token; the document stays loaded while the viewer shows it.
  useEffect(() => {
    let cancelled = false;
    let loaded: PDFDocumentProxy | null = null;
    setPdf(null);
    setError(null);
    void (async () => {
      try {
        const data = await api.documentFile(token, documentId);
        if (cancelled) return;
        const task = getDocument({ data: new Uint8Array(data), isEvalSupported: false });
        loaded = await task.promise;
        if (cancelled) {
          void loaded.destroy();
        } else {
          shown.current = loaded;
          setPdf(loaded);
        }
      } catch (e) {
        if (!cancelled) setError(problem(e));
      }
    })();
    return () => {
      cancelled = true;
      shown.current = null;
      void loaded?.destroy();
    };
  }, [documentId, token]);

  // The page fits the panel's width, and follows it when the panel is resized.
  useEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    const measure = () => setWidth(Math.max(200, Math.floor(el.clientWidth - 24)));
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  // Draw the page and its text layer; on the cited page, highlight the cited text.
  useEffect(() => {
    const box = pageRef.current;
    if (!pdf || !box || !width || page < 1 || page > pdf.numPages) return;
    let cancelled = false;
    let renderTask: RenderTask | null = null;
    let textLayer: TextLayer | null = null;
    setRendering(true);
    setDrawFailed(false);
    void (async () => {
      try {
        const proxy = await pdf.getPage(page);
        if (cancelled) return;
        const fit = (width * (ZOOMS[zoom] ?? 1)) / proxy.getViewport({ scale: 1 }).width;
        const viewport = proxy.getViewport({ scale: fit });
        const ratio = window.devicePixelRatio || 1;
        const canvas = document.createElement("canvas");
        canvas.width = Math.floor(viewport.width * ratio);
        canvas.height = Math.floor(viewport.height * ratio);
        canvas.style.width = `${Math.floor(viewport.width)}px`;
        canvas.style.height = `${Math.floor(viewport.height)}px`;
        canvas.setAttribute("aria-hidden", "true");
        const layer = document.createElement("div");
        layer.className = "textLayer";
        box.style.setProperty("--total-scale-factor", String(viewport.scale));
        box.style.width = `${Math.floor(viewport.width)}px`;
        box.style.height = `${Math.floor(viewport.height)}px`;
        box.replaceChildren(canvas, layer);
        renderTask = proxy.render({
          canvas,
          viewport,
          transform: ratio === 1 ? undefined : [ratio, 0, 0, ratio, 0, 0],
        });
        textLayer = new TextLayer({ textContentSource: proxy.streamTextContent(), container: layer, viewport });
        await Promise.all([renderTask.promise, textLayer.render()]);
        if (cancelled) return;
        const cited = page === source.page && !!source.snippet;
        let match: SnippetMatch | null = null;
        if (cited) {
          match = findSnippet(textLayer.textContentItemsStr, source.snippet ?? "");
          for (const index of match?.items ?? []) textLayer.textDivs[index]?.classList.add("highlight");
          layer.querySelector(".highlight")?.scrollIntoView({ block: "center" });
        } else {
          scrollRef.current?.scrollTo({ top: 0 });
        }
        setFound(cited ? (match ? (match.whole ? "whole" : "part") : "none") : null);
        setRendering(false);
      } catch {
        if (!cancelled && shown.current === pdf) setDrawFailed(true);
      }
    })();
    return () => {
      cancelled = true;
      renderTask?.cancel();
      textLayer?.cancel();
    };
  }, [pdf, page, width, zoom, source]);

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    // Full screen on a phone: Tab stays inside the viewer.
    if (e.key === "Tab" && narrow && panelRef.current) {
      const focusable = [...panelRef.current.querySelectorAll<HTMLElement>("button:not(:disabled), [tabindex='0']")];
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (!first || !last) return;
      if (e.shiftKey && (document.activeElement === first || document.activeElement === headingRef.current)) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }
  };

  const button =
    "rounded-md border border-slate-300 bg-white px-2.5 py-1 text-sm text-slate-900 hover:bg-slate-100 disabled:cursor-not-allowed disabled:text-slate-400";
  return (
    <div
      ref={panelRef}
      role="dialog"
      aria-modal={narrow || undefined}
      aria-labelledby={headingId}
      onKeyDown={onKeyDown}
      data-testid="source-viewer"
      className={className}
    >
      <div className="flex items-start gap-2 border-b border-slate-200 px-3 py-2">
        <div className="min-w-0 flex-1">
          <h2 id={headingId} ref={headingRef} tabIndex={-1} className="truncate font-semibold text-slate-900">
            {title}
          </h2>
          <p className="truncate text-sm text-slate-700">
            Cited: page {source.page}
            {source.heading ? ` · ${source.heading}` : ""}
          </p>
        </div>
        <button type="button" onClick={onClose} className={button} aria-label="Close the source" title="Close (Esc)">
          Close
        </button>
      </div>
      <div className="flex flex-wrap items-center gap-2 border-b border-slate-200 px-3 py-1.5 text-sm">
        <button
          type="button"
          className={button}
          aria-label="Previous page"
          disabled={!pdf || page <= 1}
          onClick={() => setPage((p) => Math.max(1, p - 1))}
        >
          <span aria-hidden="true">‹ </span>Previous
        </button>
        <p aria-live="polite" data-testid="viewer-page" data-page={page} className="min-w-[6.5rem] text-center text-slate-800">
          {pages ? `Page ${page} of ${pages}` : `Page ${page}`}
        </p>
        <button
          type="button"
          className={button}
          aria-label="Next page"
          disabled={!pdf || page >= pages}
          onClick={() => setPage((p) => Math.min(pages, p + 1))}
        >
          Next<span aria-hidden="true"> ›</span>
        </button>
        {page !== source.page && (
          <button
            type="button"
            className={button}
            onClick={() => {
              setPage(source.page);
              // This button goes away on the cited page: the focus goes to the page.
              scrollRef.current?.focus();
            }}
          >
            Back to page {source.page}
          </button>
        )}
        <span className="ml-auto flex items-center gap-1">
          <button
            type="button"
            className={button}
            aria-label="Zoom out"
            disabled={zoom === 0}
            onClick={() => setZoom((z) => Math.max(0, z - 1))}
          >
            −
          </button>
          <span className="min-w-[3rem] text-center text-slate-800" data-testid="viewer-zoom">
            {Math.round((ZOOMS[zoom] ?? 1) * 100)}%
          </span>
          <button
            type="button"
            className={button}
            aria-label="Zoom in"
            disabled={zoom === ZOOMS.length - 1}
            onClick={() => setZoom((z) => Math.min(ZOOMS.length - 1, z + 1))}
          >
            +
          </button>
        </span>
      </div>
      <div
        ref={scrollRef}
        role="region"
        aria-label={`Page ${page} of ${title}`}
        tabIndex={0}
        className="min-h-0 flex-1 overflow-auto bg-slate-100 p-3"
      >
        {error ? (
          <p role="alert" className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-900">
            {error}
          </p>
        ) : (
          <>
            {drawFailed && (
              <p role="alert" className="mb-2 rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-900">
                This page could not be drawn.
              </p>
            )}
            {(!pdf || (rendering && !drawFailed)) && (
              <p className="mb-2 text-sm text-slate-700" role="status">
                {pdf ? "Drawing the page…" : "Loading the PDF…"}
              </p>
            )}
            {found && !rendering && (
              <p className="mb-2 text-sm text-slate-700" role="status" data-testid="viewer-found" data-found={found}>
                {found === "whole"
                  ? "The cited passage is highlighted."
                  : found === "part"
                    ? "Part of the cited passage is highlighted."
                    : "The cited text could not be found on this page."}
              </p>
            )}
            <div ref={pageRef} className="source-page relative mx-auto bg-white shadow" data-testid="viewer-canvas" data-page={page} />
          </>
        )}
      </div>
    </div>
  );
}
