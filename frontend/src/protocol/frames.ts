// Protocol v1 frames (docs/protocol.md). Types only: no I/O here.

export const SUBPROTOCOL = "livetutor.v1";
export const BEARER_PREFIX = "bearer.";

export type Mode = "explain" | "hint";

/** WebSocket close codes the server uses, plus the browser's own 1006. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  ABNORMAL: 1006,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  IDLE_TIMEOUT: 4408,
} as const;

export interface Source {
  document: string;
  /** The document's id for GET /documents/{id}/file (`demo` for the bundled demo course). */
  document_id?: string;
  /** The document's title (its PDF title, else the file name). */
  title?: string;
  page: number;
  heading?: string;
  snippet?: string;
  score?: number;
  /** The passage's number in the prompt: "[n]" in the answer's text. */
  n?: number;
  /** Whether the answer's text cites it by number. */
  cited?: boolean;
}

export interface Limits {
  max_frame_bytes: number;
  max_question_chars: number;
  max_streams: number;
  idle_timeout_s: number;
}

export interface StoredMessage {
  id: string;
  role: "learner" | "tutor";
  text: string;
  created_at: number;
  mode: Mode | null;
  stream: string | null;
  reason: string | null;
  sources: Source[];
  model: string | null;
  cached: boolean;
}

export interface RunningStream {
  stream: string;
  ask: string;
  seq: number;
  /** The answer up to ``seq``. */
  text: string;
}

export interface WelcomeFrame {
  type: "welcome";
  connection: string;
  pod: string;
  user: string;
  protocol: number;
  limits: Limits;
}
export interface StreamStartFrame {
  type: "stream.start";
  stream: string;
  ask: string;
  session: string;
  course: string;
  mode: Mode;
  text?: string;
  /** A hint's rung of the ladder, 1 to 4. */
  hint_level?: number;
  problem?: string;
  /** An explain ask answered as a hint by course or problem policy. */
  hint_only?: boolean;
}
export interface DeltaFrame {
  type: "delta";
  stream: string;
  seq: number;
  text: string;
}
export interface StreamEndFrame {
  type: "stream.end";
  stream: string;
  seq: number;
  reason: string;
  sources: Source[];
  cached: boolean;
  model: string;
  fallback?: boolean;
  message?: string | null;
  taken_over?: boolean;
  hint_level?: number;
  hint_only?: boolean;
  /** Seqs of the deltas that stand in for sentences the guard kept back. */
  withheld?: number[];
}
export interface FeedbackFrame {
  type: "feedback";
  ref: string;
  problem: string;
  correct: boolean;
  message: string;
}
export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
  ref: string | null;
  retry_after_ms?: number;
}
export interface SessionFrame {
  type: "session";
  ref: string | null;
  session: string;
  course: string;
  title: string;
  messages: StoredMessage[];
  streams: RunningStream[];
  presence: { pod: string; connection: string }[];
}
export interface PongFrame {
  type: "pong";
  ref: string | null;
}
export interface ReconnectFrame {
  type: "reconnect";
  reason: string;
  after_ms: number;
}
export interface PredictionsFrame {
  type: "predictions";
  /** The typed text these predictions answer. */
  text: string;
  items: (string | { text: string })[];
  ref: string | null;
}
export interface DocumentProgressFrame {
  type: "document.progress";
  document: string;
  course: string;
  status: "queued" | "indexing" | "ready" | "failed";
  progress: number;
  reason?: string | null;
}

export type ServerFrame =
  | WelcomeFrame
  | StreamStartFrame
  | DeltaFrame
  | StreamEndFrame
  | ErrorFrame
  | SessionFrame
  | PongFrame
  | ReconnectFrame
  | PredictionsFrame
  | DocumentProgressFrame
  | FeedbackFrame;

export interface AskFrame {
  type: "ask";
  id: string;
  course: string;
  text: string;
  session: string;
  mode: Mode;
  problem?: string;
}

export type ClientFrame =
  | AskFrame
  | { type: "attempt"; id: string; course: string; problem: string; text: string }
  | { type: "cancel"; id?: string; stream: string }
  | { type: "resume"; id?: string; stream: string; after: number }
  | { type: "open"; id?: string; session: string }
  | { type: "typing"; id?: string; course: string; text: string; session?: string }
  | { type: "ping"; id?: string };

/** Identifiers (course, session, stream): 1-64 of A-Z a-z 0-9 _ . : - */
export const IDENT = /^[A-Za-z0-9_.:-]{1,64}$/;

export function newId(prefix: string): string {
  const bytes = new Uint8Array(10);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("").slice(0, 16);
}

export function parseFrame(text: string): ServerFrame | null {
  try {
    const value: unknown = JSON.parse(text);
    if (value && typeof value === "object" && typeof (value as { type?: unknown }).type === "string") {
      return value as ServerFrame;
    }
  } catch {
    // fall through
  }
  return null;
}
