// Formulas on the page. The renderer (math.ts: KaTeX and its CSS) is its own chunk,
// fetched once, the first time a text may hold a formula. Until it is there, and for
// a formula KaTeX rejects, the formula shows as its source text: a learner never sees
// an error box, only the text the tutor wrote.

import { type ReactNode, useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore } from "react";

import { mayHoldMath, splitMath } from "./mathSyntax";

type MathModule = typeof import("./math");

// After a failed fetch (offline, a deploy replaced the chunk) wait before trying again.
const RETRY_MS = 10_000;

let loaded: MathModule | null = null;
let loading: Promise<MathModule> | null = null;
let retryAt = 0;
const listeners = new Set<() => void>();

/** Fetch the renderer (once); formulas on the page render when it arrives. */
export function loadMath(): Promise<MathModule> {
  if (loaded) return Promise.resolve(loaded);
  if (!loading) {
    loading = import("./math").then(
      (module) => {
        loaded = module;
        for (const listener of listeners) listener();
        return module;
      },
      (err: unknown) => {
        loading = null;
        retryAt = Date.now() + RETRY_MS;
        throw err;
      },
    );
  }
  return loading;
}

/** Start fetching the renderer when ``text`` may hold a formula; failures leave the source text. */
export function useMathFor(text: string): void {
  const wanted = !loaded && mayHoldMath(text);
  useEffect(() => {
    if (wanted && !loading && Date.now() >= retryAt) loadMath().catch(() => undefined);
  }, [wanted]);
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function useMathModule(): MathModule | null {
  return useSyncExternalStore(
    subscribe,
    () => loaded,
    () => loaded,
  );
}

interface FormulaProps {
  tex: string;
  display: boolean;
  /** The formula as written, delimiters included: shown until it renders, or if it cannot. */
  source: string;
}

/** One formula: KaTeX's rendering once the renderer is loaded and accepts it, else its source. */
export function Formula({ tex, display, source }: FormulaProps): ReactNode {
  const math = useMathModule();
  const ref = useRef<HTMLSpanElement>(null);
  const key = `${display ? "display" : "inline"}:${tex}`;
  const [rejected, setRejected] = useState<string | null>(null);
  useMathFor(source);
  useLayoutEffect(() => {
    const element = ref.current;
    // Before paint: a rejected formula turns into its source without showing anything else.
    if (math && element && !math.renderFormula(element, tex, display)) setRejected(key);
  }, [math, tex, display, key]);
  if (!math || rejected === key) {
    return (
      <span className="md-math-src" data-math={math ? "rejected" : "pending"}>
        {source}
      </span>
    );
  }
  return <span ref={ref} className={display ? "md-math-display" : "md-math"} />;
}

/** Plain text (a learner's question) with its closed formulas rendered; no other markup. */
export function MathText({ text }: { text: string }): ReactNode {
  useMathFor(text);
  return splitMath(text).map((segment, i) =>
    segment.kind === "text" ? (
      segment.text
    ) : (
      <Formula key={i} tex={segment.tex} display={segment.display} source={segment.source} />
    ),
  );
}
