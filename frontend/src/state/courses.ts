// Which course the page shows, and whether that course has anything to answer from.
// Pure functions: the store (chat.ts) keeps the facts, these decide what they mean.

import type { CourseDocument, SessionSummary } from "../lib/api";

/** Courses the server ships with material but no documents (the bundled demo course). */
export const BUNDLED_COURSES: ReadonlySet<string> = new Set(["demo"]);

/** What the page has learned about a course's material. */
export interface CourseMaterial {
  /** Documents not failed, from `GET /courses/{course}/documents`; null until that answered. */
  documents: number | null;
  /** One of its documents is ready (from the list or a `document.progress` frame). */
  ready: boolean;
  /** The server refused a question in it with `course_unknown`, and no document became ready since. */
  refused: boolean;
}

export const UNKNOWN_MATERIAL: CourseMaterial = { documents: null, ready: false, refused: false };

/** The course's material after its document list arrived. */
export function withDocuments(material: CourseMaterial | undefined, docs: CourseDocument[]): CourseMaterial {
  const ready = docs.some((d) => d.status === "ready");
  const documents = docs.filter((d) => d.status !== "failed").length;
  return { documents, ready, refused: (material?.refused ?? false) && !ready };
}

/** The course's material after a `document.progress` frame about one of its documents. */
export function withProgress(material: CourseMaterial | undefined, status: CourseDocument["status"]): CourseMaterial {
  const was = material ?? UNKNOWN_MATERIAL;
  if (status === "failed") return was;
  const ready = was.ready || status === "ready";
  return { documents: Math.max(was.documents ?? 0, 1), ready, refused: was.refused && !ready };
}

/** The course's material after the server refused a question in it with `course_unknown`. */
export function withRefusal(material: CourseMaterial | undefined): CourseMaterial {
  return { ...(material ?? UNKNOWN_MATERIAL), ready: false, refused: true };
}

/**
 * True when the course has nothing to answer from yet: the server refused a question
 * in it, or its document list is empty while it is not a bundled course and none of
 * the learner's conversations is in it (a conversation means answers came from somewhere).
 * Unknown (the list has not answered) is not empty: the page says nothing rather than
 * something wrong.
 */
export function courseIsEmpty(course: string, material: CourseMaterial | undefined, sessions: readonly SessionSummary[]): boolean {
  if (material?.refused) return true;
  if (BUNDLED_COURSES.has(course) || material?.documents !== 0) return false;
  return !sessions.some((s) => s.course === course);
}

/** The courses the selector offers: the token's, plus the shown one when the token lacks it. */
export function courseOptions(courses: readonly string[], shown: string): string[] {
  return courses.includes(shown) ? [...courses] : [...courses, shown];
}
