// The protocol v1 client: owns one WebSocket at a time and hides its drops.
//
// - auth: the token goes in the `bearer.<jwt>` subprotocol next to `livetutor.v1`;
// - heartbeats: `ping` frames while the page is active; no frame for pongTimeoutMs
//   means the socket is dead, whatever the browser thinks;
// - reconnect with exponential backoff and jitter; promptly after a pod restart
//   (close 1012, or the `reconnect` frame of a draining pod);
// - `resume` from the last seq of every stream that had not ended, and re-`open` of
//   every joined session, after each reconnect;
// - duplicate and gap checks per stream: a repeated seq is dropped, a gap asks the
//   server to replay from the last seq seen;
// - an outbox: asks made while offline are sent once the connection is back; asks
//   in flight when it dropped are checked against the session and sent again only
//   when the server never got them.
//
// No React and no DOM beyond the WebSocket constructor, which tests replace.

import { type BackoffOptions, DEFAULT_BACKOFF, backoffDelay } from "./backoff";
import {
  type AskFrame,
  BEARER_PREFIX,
  type ClientFrame,
  CloseCode,
  type DeltaFrame,
  type DocumentProgressFrame,
  type ErrorFrame,
  type FeedbackFrame,
  type Limits,
  type Mode,
  type PredictionsFrame,
  type SessionFrame,
  type StreamEndFrame,
  type StreamStartFrame,
  SUBPROTOCOL,
  type WelcomeFrame,
  newId,
  parseFrame,
} from "./frames";

export type ConnectionState =
  | "idle"
  | "connecting"
  | "connected"
  | "reconnecting"
  | "resumed"
  | "paused"
  | "signed-out";

export interface StateInfo {
  state: ConnectionState;
  /** Failed attempts since the last good connection. */
  attempt: number;
  /** When reconnecting: milliseconds until the next try. */
  retryInMs?: number;
  /** Why the last connection ended. */
  lastClose?: { code: number; reason: string };
  /** After a reconnect: streams resumed. */
  resumed?: number;
  /** Asks waiting in the outbox. */
  queued: number;
}

/** The part of the browser's WebSocket the client uses. */
export interface SocketLike {
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type SocketFactory = (url: string, protocols: string[]) => SocketLike;

export interface ClientOptions {
  /** ws:// or wss:// URL of /ws. */
  url: string;
  /** The current token; null when signed out. */
  token: () => string | null;
  socket?: SocketFactory;
  backoff?: Partial<BackoffOptions>;
  heartbeatMs?: number;
  pongTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Keep heartbeats going while this holds (the page is visible). */
  isActive?: () => boolean;
  /** After a connection that never got `welcome`: false if the token is refused. */
  checkAuth?: () => Promise<boolean>;
  random?: () => number;
  now?: () => number;
}

export interface AskRequest {
  id?: string;
  session: string;
  course: string;
  text: string;
  mode: Mode;
  /** A problem of the course the question is about. */
  problem?: string;
}

export interface AttemptRequest {
  id?: string;
  course: string;
  problem: string;
  text: string;
}

export interface ClientEvents {
  state: StateInfo;
  welcome: WelcomeFrame;
  start: StreamStartFrame;
  delta: DeltaFrame;
  end: StreamEndFrame;
  /** `adopted`: running streams whose text in the frame is ahead of what was seen. */
  session: { frame: SessionFrame; adopted: Set<string> };
  error: ErrorFrame;
  predictions: PredictionsFrame;
  document: DocumentProgressFrame;
  /** The grade of an attempt (`ref` is the attempt's id). */
  feedback: FeedbackFrame;
  /** An ask left the outbox (sent, or sent again after a reconnect). */
  sent: AskFrame;
}
type Handler<K extends keyof ClientEvents> = (value: ClientEvents[K]) => void;

interface Tracked {
  stream: string;
  ask: string;
  session: string;
  last: number;
  ended: boolean;
  /** A resume is on its way; deltas beyond last+1 are dropped until it fills the gap. */
  resyncing: boolean;
}

interface InFlight {
  frame: AskFrame;
  sentAt: number;
  /** The connection dropped before the server acknowledged the ask. */
  uncertain: boolean;
}

const OPEN = 1;
const MAX_ENDED_KEPT = 500;
const RECONNECT_SOON_MS = 750;

function defaultSocket(url: string, protocols: string[]): SocketLike {
  return new WebSocket(url, protocols) as unknown as SocketLike;
}

export class TutorClient {
  readonly options: Required<Omit<ClientOptions, "checkAuth" | "backoff">> & {
    checkAuth?: () => Promise<boolean>;
    backoff: BackoffOptions;
  };
  private ws: SocketLike | null = null;
  private welcomed = false;
  private stopped = true;
  private attempt = 0;
  private everConnected = false;
  private connectedAt = 0;
  private lastFrameAt = 0;
  private draining = false;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private handlers = new Map<keyof ClientEvents, Set<(value: never) => void>>();
  private stateInfo: StateInfo = { state: "idle", attempt: 0, queued: 0 };

  /** Streams seen, by id (ended ones kept a while for the duplicate check). */
  readonly streams = new Map<string, Tracked>();
  /** Asks not yet sent. */
  readonly outbox: AskFrame[] = [];
  /** Asks sent and not yet answered by `stream.start` or an `error`. */
  readonly inflight = new Map<string, InFlight>();
  /** Sessions to follow live; re-opened after each reconnect. */
  readonly joined = new Set<string>();
  /** open id -> session, to match `session` frames and errors to their open. */
  private opens = new Map<string, string>();
  limits: Limits | null = null;
  /** Counters for tests and diagnostics. */
  readonly stats = { duplicates: 0, gaps: 0, reconnects: 0, resumes: 0 };

  constructor(options: ClientOptions) {
    this.options = {
      socket: defaultSocket,
      heartbeatMs: 15_000,
      pongTimeoutMs: 10_000,
      connectTimeoutMs: 10_000,
      isActive: () => true,
      random: Math.random,
      now: () => Date.now(),
      ...options,
      backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    };
  }

  // -- public API -----------------------------------------------------------

  get state(): StateInfo {
    return this.stateInfo;
  }

  get connected(): boolean {
    return this.welcomed && this.ws?.readyState === OPEN;
  }

  on<K extends keyof ClientEvents>(event: K, handler: Handler<K>): () => void {
    let set = this.handlers.get(event) as Set<Handler<K>> | undefined;
    if (!set) {
      set = new Set();
      this.handlers.set(event, set as Set<(value: never) => void>);
    }
    const handlers = set;
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
    };
  }

  /** Connect (and keep reconnecting) until stop(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  /** Close for good (sign-out, page teardown). */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    if (ws) {
      detach(ws);
      ws.close(CloseCode.NORMAL, "client stopped");
    }
    this.setState({ state: "idle" });
  }

  /** The user is back (input, focus, network online): reconnect now if waiting. */
  wake(): void {
    if (this.stopped) return;
    const state = this.stateInfo.state;
    if (state === "paused" || (state === "reconnecting" && !this.ws)) {
      this.cancelRetry();
      this.connect();
    }
  }

  /** Ask a question; queued in the outbox while offline. Returns the ask id. */
  ask(request: AskRequest): string {
    const frame: AskFrame = {
      type: "ask",
      id: request.id ?? newId("a-"),
      session: request.session,
      course: request.course,
      text: request.text,
      mode: request.mode,
    };
    if (request.problem) frame.problem = request.problem;
    this.joined.add(request.session);
    if (this.connected && !this.draining) {
      this.sendAsk(frame);
    } else {
      this.outbox.push(frame);
      this.setState({});
      this.wake();
    }
    return frame.id;
  }

  /**
   * Send an answer to a course problem for grading; answered by a `feedback` event.
   * Not queued: returns null when offline (a grade is only useful while the learner waits).
   */
  sendAttempt(request: AttemptRequest): string | null {
    const id = request.id ?? newId("t-");
    const sent = this.send({ type: "attempt", id, course: request.course, problem: request.problem, text: request.text });
    return sent ? id : null;
  }

  /** Stop a running answer. */
  cancel(stream: string): void {
    this.send({ type: "cancel", stream, id: newId("c-") });
  }

  /** Follow a session live (another tab's asks, running answers). */
  open(session: string): void {
    this.joined.add(session);
    if (this.connected) this.sendOpen(session);
  }

  /** Stop following a session here (the server keeps it joined until reconnect). */
  leave(session: string): void {
    this.joined.delete(session);
  }

  /** The learner is typing; dropped when offline (predictions are a nicety). */
  typing(course: string, text: string, session?: string): void {
    const frame: ClientFrame = { type: "typing", course, text };
    if (session) frame.session = session;
    this.send(frame);
  }

  // -- connection -----------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    const token = this.options.token();
    if (!token) {
      this.setState({ state: "signed-out" });
      return;
    }
    this.setState({ state: this.everConnected ? "reconnecting" : "connecting", retryInMs: 0 });
    let ws: SocketLike;
    try {
      ws = this.options.socket(this.options.url, [SUBPROTOCOL, BEARER_PREFIX + token]);
    } catch {
      this.scheduleReconnect(CloseCode.ABNORMAL, "could not open a socket");
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    this.draining = false;
    ws.onmessage = (ev) => {
      if (this.ws === ws && typeof ev.data === "string") this.receive(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.dropped(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // onclose follows with the code.
    };
    this.connectTimer = this.later(() => {
      if (this.ws === ws && !this.welcomed) this.kill(ws, "no welcome in time");
    }, this.options.connectTimeoutMs);
  }

  /** Give up on a socket now (heartbeat or welcome timeout): its onclose may never come. */
  private kill(ws: SocketLike, reason: string): void {
    detach(ws);
    try {
      ws.close(4000, reason);
    } catch {
      // already closed
    }
    if (this.ws === ws) this.dropped(CloseCode.ABNORMAL, reason);
  }

  private dropped(code: number, reason: string): void {
    const ws = this.ws;
    const wasWelcomed = this.welcomed;
    const lived = this.now() - this.connectedAt;
    this.ws = null;
    this.welcomed = false;
    this.stopHeartbeat();
    if (this.connectTimer) this.clear(this.connectTimer);
    if (ws) detach(ws);
    for (const pending of this.inflight.values()) pending.uncertain = true;
    if (this.stopped) return;
    this.stats.reconnects++;
    const lastClose = { code, reason };
    if (code === CloseCode.IDLE_TIMEOUT && !this.busy()) {
      // The server closed an idle connection: come back when the learner does.
      this.setState({ state: "paused", lastClose });
      return;
    }
    if (wasWelcomed && lived >= 5_000) this.attempt = 0;
    if (!wasWelcomed && this.options.checkAuth) {
      // A refused handshake looks like any network failure in a browser: ask over HTTP.
      this.options.checkAuth().then(
        (ok) => {
          if (ok || this.stopped || this.welcomed) return;
          this.stopped = true;
          this.cancelRetry();
          const pending = this.ws;
          this.ws = null;
          if (pending) {
            detach(pending);
            pending.close(CloseCode.NORMAL, "signed out");
          }
          this.setState({ state: "signed-out", lastClose });
        },
        () => undefined,
      );
    }
    this.scheduleReconnect(code, reason);
  }

  private scheduleReconnect(code: number, reason: string): void {
    const soon = code === CloseCode.SERVICE_RESTART || this.draining;
    const delay = soon
      ? Math.round(this.options.random() * RECONNECT_SOON_MS)
      : backoffDelay(this.attempt, this.options.backoff, this.options.random);
    this.attempt++;
    this.setState({ state: "reconnecting", retryInMs: delay, lastClose: { code, reason } });
    this.cancelRetry();
    this.retryTimer = this.later(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private cancelRetry(): void {
    if (this.retryTimer) this.clear(this.retryTimer);
    this.retryTimer = null;
  }

  private receive(text: string): void {
    this.lastFrameAt = this.now();
    const frame = parseFrame(text);
    if (!frame) return;
    switch (frame.type) {
      case "welcome":
        this.onWelcome(frame);
        break;
      case "stream.start":
        this.onStart(frame);
        break;
      case "delta":
        this.onDelta(frame);
        break;
      case "stream.end":
        this.onEnd(frame);
        break;
      case "session":
        this.onSession(frame);
        break;
      case "error":
        this.onError(frame);
        break;
      case "reconnect":
        this.onReconnectNotice(frame.after_ms);
        break;
      case "predictions":
        this.emit("predictions", frame);
        break;
      case "document.progress":
        this.emit("document", frame);
        break;
      case "feedback":
        this.emit("feedback", frame);
        break;
      case "pong":
        break;
    }
  }

  private onWelcome(frame: WelcomeFrame): void {
    const again = this.everConnected;
    this.welcomed = true;
    this.everConnected = true;
    this.connectedAt = this.now();
    this.limits = frame.limits;
    if (this.connectTimer) this.clear(this.connectTimer);
    this.emit("welcome", frame);
    // Order matters: resume what we were following, re-join sessions, then the outbox.
    let resumed = 0;
    for (const t of this.streams.values()) {
      if (t.ended) continue;
      t.resyncing = true;
      this.send({ type: "resume", stream: t.stream, after: t.last, id: newId("r-") });
      resumed++;
    }
    this.stats.resumes += resumed;
    const uncertainSessions = new Set(
      [...this.inflight.values()].filter((f) => f.uncertain).map((f) => f.frame.session),
    );
    for (const session of new Set([...this.joined, ...uncertainSessions])) this.sendOpen(session);
    this.flushOutbox();
    this.startHeartbeat();
    this.setState({ state: again ? "resumed" : "connected", resumed, retryInMs: 0 });
  }

  private onStart(frame: StreamStartFrame): void {
    const pending = this.inflight.get(frame.ask);
    if (pending) this.inflight.delete(frame.ask);
    if (this.streams.has(frame.stream)) return; // a replay of one already seen
    this.track(frame.stream, frame.ask, frame.session, 0);
    this.joined.add(frame.session);
    this.emit("start", frame);
  }

  private onDelta(frame: DeltaFrame): void {
    const t = this.streams.get(frame.stream);
    if (!t) {
      // A stream this tab never saw start (it began while we were away): replay it whole.
      this.stats.gaps++;
      const tracked = this.track(frame.stream, "", "", 0);
      tracked.resyncing = true;
      this.send({ type: "resume", stream: frame.stream, after: 0, id: newId("r-") });
      return;
    }
    if (t.ended || frame.seq <= t.last) {
      this.stats.duplicates++;
      return;
    }
    if (frame.seq > t.last + 1) {
      this.requestReplay(t);
      return;
    }
    t.last = frame.seq;
    t.resyncing = false;
    this.emit("delta", frame);
  }

  private onEnd(frame: StreamEndFrame): void {
    const t = this.streams.get(frame.stream) ?? this.track(frame.stream, "", "", frame.seq);
    if (t.ended) {
      this.stats.duplicates++;
      return;
    }
    if (frame.seq > t.last) {
      this.requestReplay(t);
      return;
    }
    t.ended = true;
    t.resyncing = false;
    this.emit("end", frame);
    this.pruneEnded();
    this.maybeFinishDrain();
  }

  private requestReplay(t: Tracked): void {
    this.stats.gaps++;
    if (t.resyncing) return;
    t.resyncing = true;
    this.send({ type: "resume", stream: t.stream, after: t.last, id: newId("r-") });
  }

  private onSession(frame: SessionFrame): void {
    if (frame.ref) this.opens.delete(frame.ref);
    const adopted = new Set<string>();
    for (const s of frame.streams) {
      const t = this.streams.get(s.stream);
      if (!t) {
        this.track(s.stream, s.ask, frame.session, s.seq);
        adopted.add(s.stream);
      } else if (!t.ended && s.seq > t.last) {
        t.last = s.seq;
        t.resyncing = false;
        adopted.add(s.stream);
      }
      const pending = this.inflight.get(s.ask);
      if (pending) this.inflight.delete(s.ask);
    }
    this.settleUncertain(frame.session, frame);
    this.emit("session", { frame, adopted });
  }

  private onError(frame: ErrorFrame): void {
    const ref = frame.ref;
    if (ref && this.opens.has(ref)) {
      const session = this.opens.get(ref) as string;
      this.opens.delete(ref);
      // The session does not exist yet: asks in flight for it never arrived.
      if (frame.code === "session_forbidden") this.settleUncertain(session, null);
    }
    if (ref && this.inflight.has(ref)) {
      const pending = this.inflight.get(ref) as InFlight;
      this.inflight.delete(ref);
      if (frame.code === "draining") {
        // The pod takes no new asks: send it again on the next connection.
        this.outbox.unshift(pending.frame);
        this.onReconnectNotice(0);
        this.setState({});
        return;
      }
    }
    if (ref?.startsWith("r-") && frame.code === "stream_unknown") {
      // Resume of a stream the server no longer keeps: it ended long ago; read it over HTTP.
      for (const t of this.streams.values()) if (t.resyncing && !t.ended) t.resyncing = false;
    }
    this.emit("error", frame);
  }

  /**
   * After a reconnect, decide for each ask that was in flight whether the server got it:
   * yes if the session shows its stream, or its question after it was sent; else send again.
   */
  private settleUncertain(session: string, frame: SessionFrame | null): void {
    for (const [id, pending] of [...this.inflight]) {
      if (!pending.uncertain || pending.frame.session !== session) continue;
      const arrived =
        frame !== null &&
        (frame.streams.some((s) => s.ask === id) ||
          frame.messages.some(
            (m) =>
              m.role === "learner" &&
              m.text === pending.frame.text &&
              m.created_at * 1000 >= pending.sentAt - 60_000,
          ));
      this.inflight.delete(id);
      if (!arrived) this.sendAsk(pending.frame);
    }
  }

  private onReconnectNotice(afterMs: number): void {
    // The pod drains: answers running here may finish; then move to another pod.
    this.draining = true;
    const ws = this.ws;
    const deadline = Math.max(0, Math.min(afterMs, 30_000));
    this.later(() => {
      if (this.ws === ws && ws) this.kill(ws, "pod draining");
    }, deadline);
    this.maybeFinishDrain();
  }

  private maybeFinishDrain(): void {
    if (!this.draining || !this.ws) return;
    if ([...this.streams.values()].some((t) => !t.ended)) return;
    const ws = this.ws;
    this.later(() => {
      if (this.ws === ws) this.kill(ws, "pod draining");
    }, 0);
  }

  // -- sending --------------------------------------------------------------

  private send(frame: ClientFrame): boolean {
    if (!this.connected || !this.ws) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  private sendAsk(frame: AskFrame): void {
    if (this.send(frame)) {
      this.inflight.set(frame.id, { frame, sentAt: this.now(), uncertain: false });
      this.emit("sent", frame);
    } else {
      this.outbox.push(frame);
    }
  }

  private sendOpen(session: string): void {
    const id = newId("o-");
    this.opens.set(id, session);
    this.send({ type: "open", session, id });
  }

  private flushOutbox(): void {
    const queued = this.outbox.splice(0);
    for (const frame of queued) this.sendAsk(frame);
  }

  // -- heartbeats -----------------------------------------------------------

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.lastFrameAt = this.now();
    this.heartbeatTimer = setInterval(() => this.beat(), this.options.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private beat(): void {
    const ws = this.ws;
    if (!ws || !this.welcomed) return;
    if (this.now() - this.lastFrameAt > this.options.heartbeatMs + this.options.pongTimeoutMs) {
      this.kill(ws, "heartbeat timeout");
      return;
    }
    // An inactive, idle tab stops pinging so the server may close it (4408).
    if (this.options.isActive() || this.busy()) {
      this.send({ type: "ping", id: newId("p-") });
    } else {
      this.lastFrameAt = this.now();
    }
  }

  private busy(): boolean {
    return (
      this.outbox.length > 0 ||
      this.inflight.size > 0 ||
      [...this.streams.values()].some((t) => !t.ended)
    );
  }

  // -- helpers --------------------------------------------------------------

  private track(stream: string, ask: string, session: string, last: number): Tracked {
    const t: Tracked = { stream, ask, session, last, ended: false, resyncing: false };
    this.streams.set(stream, t);
    return t;
  }

  private pruneEnded(): void {
    if (this.streams.size <= MAX_ENDED_KEPT) return;
    for (const [id, t] of this.streams) {
      if (this.streams.size <= MAX_ENDED_KEPT / 2) break;
      if (t.ended) this.streams.delete(id);
    }
  }

  private emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    const set = this.handlers.get(event) as Set<Handler<K>> | undefined;
    if (!set) return;
    for (const handler of [...set]) handler(value);
  }

  private setState(patch: Partial<StateInfo>): void {
    this.stateInfo = {
      ...this.stateInfo,
      ...patch,
      attempt: this.attempt,
      queued: this.outbox.length,
    };
    this.emit("state", this.stateInfo);
  }

  private now(): number {
    return this.options.now();
  }

  private later(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  private clear(timer: ReturnType<typeof setTimeout>): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  private clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.retryTimer = null;
    this.connectTimer = null;
    this.stopHeartbeat();
  }
}

function detach(ws: SocketLike): void {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}

/** The /ws URL of the page's own origin. */
export function socketUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}
