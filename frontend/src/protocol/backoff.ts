// Reconnect delays: exponential growth, capped, with jitter so that thousands of
// clients dropped by one pod do not all come back in the same instant.

export interface BackoffOptions {
  /** Delay cap of the first retry. */
  baseMs: number;
  /** Largest delay cap. */
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000, factor: 2 };

/**
 * Delay before retry number ``attempt`` (0 for the first): a random value in
 * [cap/2, cap] where cap = min(maxMs, baseMs * factor^attempt) ("equal jitter").
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxMs, options.baseMs * options.factor ** Math.max(attempt, 0));
  return Math.round(cap / 2 + random() * (cap / 2));
}
