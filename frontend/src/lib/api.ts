// The HTTP API (docs/protocol.md "HTTP", docs/signin.md, the documents routes).

import type { StoredMessage } from "../protocol/frames";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TIMEOUT_MS = 15_000;
// A course PDF may be several megabytes on a slow link.
const FILE_TIMEOUT_MS = 60_000;

type Init = RequestInit & { token?: string };

/** Fetch with the token and a timeout that covers the body too; a typed error otherwise. */
async function request<T>(path: string, init: Init, read: (r: Response) => Promise<T>, timeoutMs: number): Promise<T> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response: Response;
  let body: T | undefined;
  try {
    response = await fetch(path, { ...init, headers, signal: controller.signal });
    if (response.ok) body = await read(response);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached.");
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const err = ((await response.json().catch(() => null)) ?? {}) as { error?: string; message?: string };
    throw new ApiError(response.status, err.error ?? "http", err.message ?? `HTTP ${response.status}`);
  }
  return body as T;
}

function call<T>(path: string, init: Init = {}): Promise<T> {
  return request(path, init, (r) => r.json().catch(() => null) as Promise<T>, TIMEOUT_MS);
}

export interface SessionSummary {
  id: string;
  course: string;
  title: string;
  created_at: number;
  updated_at: number;
}

export interface AuthConfig {
  dev_signin: boolean;
  issuer: string;
  token_ttl_s: number;
}

export interface DevToken {
  token: string;
}

export type DocumentStatus = "queued" | "indexing" | "ready" | "failed";

export interface CourseDocument {
  id: string;
  status: DocumentStatus;
  progress?: number;
  reason?: string | null;
  name?: string;
  filename?: string;
  title?: string;
  course?: string;
}

export type TutoringPolicy = "open" | "hint_only";

/** A course problem (`GET /courses/{course}/problems`); `answer` and `accept` only for instructors. */
export interface Problem {
  id: string;
  course: string;
  statement: string;
  policy: TutoringPolicy;
  pages: number[];
  answer?: string;
  accept?: string[];
}

/** A course's tutoring policy (`GET /courses/{course}/policy`). */
export interface CoursePolicy {
  course: string;
  mode: TutoringPolicy;
  hint_only_from: string | null;
  hint_only_until: string | null;
  /** Hints only hold at this moment (the mode is hint_only and now is in its window). */
  hint_only_now: boolean;
}

export const api = {
  authConfig: () => call<AuthConfig>("/auth/config"),
  devToken: (user: string, role: string, courses: string[]) =>
    call<DevToken>("/auth/dev-token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user, role, courses }),
    }),
  /** True if the server accepts the token (false only on 401). */
  checkToken: async (token: string): Promise<boolean> => {
    try {
      await call("/sessions", { token });
      return true;
    } catch (e) {
      return !(e instanceof ApiError && e.status === 401);
    }
  },
  sessions: (token: string) => call<{ sessions: SessionSummary[] }>("/sessions", { token }),
  messages: (token: string, session: string, limit = 1000, before?: string) =>
    call<{ session: string; course: string; messages: StoredMessage[] }>(
      `/sessions/${encodeURIComponent(session)}/messages?limit=${limit}` +
        (before ? `&before=${encodeURIComponent(before)}` : ""),
      { token },
    ),
  uploadDocument: (token: string, course: string, file: File) => {
    const form = new FormData();
    form.append("file", file);
    return call<{ id: string; status: DocumentStatus }>(
      `/courses/${encodeURIComponent(course)}/documents`,
      { method: "POST", body: form, token },
    );
  },
  document: (token: string, id: string) =>
    call<CourseDocument>(`/documents/${encodeURIComponent(id)}`, { token }),
  /** The document's PDF (GET /documents/{id}/file), read with the same token as the rest. */
  documentFile: (token: string, id: string) =>
    request(`/documents/${encodeURIComponent(id)}/file`, { token }, (r) => r.arrayBuffer(), FILE_TIMEOUT_MS),
  documents: async (token: string, course: string): Promise<CourseDocument[]> => {
    const body = await call<CourseDocument[] | { documents: CourseDocument[] }>(
      `/courses/${encodeURIComponent(course)}/documents`,
      { token },
    );
    return Array.isArray(body) ? body : (body.documents ?? []);
  },
  problems: async (token: string, course: string): Promise<Problem[]> => {
    const body = await call<{ course: string; problems: Problem[] }>(
      `/courses/${encodeURIComponent(course)}/problems`,
      { token },
    );
    return body?.problems ?? [];
  },
  policy: (token: string, course: string) =>
    call<CoursePolicy>(`/courses/${encodeURIComponent(course)}/policy`, { token }),
};
