// The learner's token: kept in localStorage (shared by the tabs of one browser),
// read for display only; the server verifies it on every request.

export type Role = "learner" | "instructor" | "admin";

export interface Identity {
  token: string;
  user: string;
  role: Role;
  courses: string[];
  /** Expiry, seconds since the epoch. */
  exp: number;
}

const KEY = "livetutor.token";

export function decodeToken(token: string): Identity | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const claims = JSON.parse(decodeURIComponent(escape(json))) as Record<string, unknown>;
    const user = claims.sub;
    const role = claims.role ?? "learner";
    const courses = Array.isArray(claims.courses) ? claims.courses.filter((c) => typeof c === "string") : [];
    const exp = typeof claims.exp === "number" ? claims.exp : 0;
    if (typeof user !== "string" || !["learner", "instructor", "admin"].includes(role as string)) return null;
    return { token, user, role: role as Role, courses: courses as string[], exp };
  } catch {
    return null;
  }
}

export function expired(identity: Identity, nowMs = Date.now()): boolean {
  return identity.exp > 0 && identity.exp * 1000 <= nowMs;
}

export function loadIdentity(storage: Storage = localStorage): Identity | null {
  const token = storage.getItem(KEY);
  const identity = token ? decodeToken(token) : null;
  return identity && !expired(identity) ? identity : null;
}

export function saveToken(token: string, storage: Storage = localStorage): Identity | null {
  const identity = decodeToken(token.trim());
  if (!identity) return null;
  storage.setItem(KEY, identity.token);
  return identity;
}

export function clearToken(storage: Storage = localStorage): void {
  storage.removeItem(KEY);
}

export const TOKEN_KEY = KEY;

/** A token handed over in the URL fragment (`#token=...`) by a sign-in page in front. */
export function takeFragmentToken(location: Location, history: History): string | null {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match?.[1]) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}
