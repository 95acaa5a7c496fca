import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { backoffDelay } from "./backoff";
import { type SocketLike, TutorClient } from "./client";
import type { ClientFrame, ServerFrame } from "./frames";

/** A socket the test plays the server side of. */
class FakeSocket implements SocketLike {
  readyState = 0;
  protocol = "";
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  sent: ClientFrame[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }
  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }
  // server side
  accept(): void {
    this.readyState = 1;
    this.onopen?.({});
    this.push({
      type: "welcome",
      connection: "c1",
      pod: "pod-a",
      user: "alice",
      protocol: 1,
      limits: { max_frame_bytes: 65536, max_question_chars: 4000, max_streams: 2, idle_timeout_s: 300 },
    });
  }
  push(frame: ServerFrame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  sentOf<T extends ClientFrame["type"]>(type: T): Extract<ClientFrame, { type: T }>[] {
    return this.sent.filter((f) => f.type === type) as Extract<ClientFrame, { type: T }>[];
  }
}

function setup(options: Partial<ConstructorParameters<typeof TutorClient>[0]> = {}) {
  const sockets: FakeSocket[] = [];
  const client = new TutorClient({
    url: "ws://test/ws",
    token: () => "tok.en.x",
    socket: (url, protocols) => {
      const s = new FakeSocket(url, protocols);
      sockets.push(s);
      return s;
    },
    random: () => 1,
    now: () => Date.now(),
    ...options,
  });
  const seen = { deltas: [] as [string, number, string][], ends: [] as string[], states: [] as string[] };
  client.on("delta", (d) => seen.deltas.push([d.stream, d.seq, d.text]));
  client.on("end", (e) => seen.ends.push(e.stream));
  client.on("state", (s) => seen.states.push(s.state));
  const last = () => sockets[sockets.length - 1] as FakeSocket;
  return { client, sockets, seen, last };
}

const start = (stream: string, ask = "a1", session = "s1"): ServerFrame => ({
  type: "stream.start",
  stream,
  ask,
  session,
  course: "demo",
  mode: "explain",
  text: "q",
});
const delta = (stream: string, seq: number): ServerFrame => ({ type: "delta", stream, seq, text: `t${seq} ` });
const end = (stream: string, seq: number): ServerFrame => ({
  type: "stream.end",
  stream,
  seq,
  reason: "stop",
  sources: [],
  cached: false,
  model: "offline",
});

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("backoff", () => {
  it("grows exponentially up to the cap, with jitter in [cap/2, cap]", () => {
    const opts = { baseMs: 500, maxMs: 8000, factor: 2 };
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, opts, () => 1))).toEqual([
      500, 1000, 2000, 4000, 8000, 8000,
    ]);
    expect(backoffDelay(3, opts, () => 0)).toBe(2000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(2, opts);
      expect(d).toBeGreaterThanOrEqual(1000);
      expect(d).toBeLessThanOrEqual(2000);
    }
  });
});

describe("connection", () => {
  it("offers the token as a bearer subprotocol next to livetutor.v1", () => {
    const { client, last } = setup();
    client.start();
    expect(last().protocols).toEqual(["livetutor.v1", "bearer.tok.en.x"]);
    last().accept();
    expect(client.state.state).toBe("connected");
  });

  it("reconnects with growing backoff while the server is unreachable", () => {
    const { client, sockets, last } = setup();
    client.start();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      last().drop(1006);
      delays.push(client.state.retryInMs ?? -1);
      vi.advanceTimersByTime(client.state.retryInMs ?? 0);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000]);
    expect(sockets).toHaveLength(5);
    last().accept();
    expect(client.state.state).toBe("connected");
    expect(client.state.attempt).toBe(4);
  });

  it("comes back promptly after a pod restart (1012)", () => {
    const { client, sockets, last } = setup({ random: () => 0.5 });
    client.start();
    last().accept();
    last().drop(1012, "service restart");
    expect(client.state.state).toBe("reconnecting");
    expect(client.state.retryInMs).toBeLessThan(1000);
    vi.advanceTimersByTime(1000);
    expect(sockets).toHaveLength(2);
  });

  it("pauses after an idle close and reconnects on wake()", () => {
    const { client, sockets, last } = setup();
    client.start();
    last().accept();
    last().drop(4408, "idle timeout");
    expect(client.state.state).toBe("paused");
    vi.advanceTimersByTime(120_000);
    expect(sockets).toHaveLength(1);
    client.wake();
    expect(sockets).toHaveLength(2);
  });

  it("drops a socket that stays silent past the heartbeat timeout", () => {
    const { client, sockets, last } = setup({ heartbeatMs: 1000, pongTimeoutMs: 500 });
    client.start();
    last().accept();
    vi.advanceTimersByTime(1000);
    expect(last().sentOf("ping")).toHaveLength(1);
    // no pong, no frame at all
    vi.advanceTimersByTime(1000);
    expect(last().closedByClient?.code).toBe(4000);
    expect(client.state.state).toBe("reconnecting");
    vi.advanceTimersByTime(client.state.retryInMs ?? 0);
    expect(sockets).toHaveLength(2);
  });

  it("reports signed-out when the token is refused", async () => {
    const { client, last } = setup({ checkAuth: () => Promise.resolve(false) });
    client.start();
    last().drop(1006);
    await vi.runAllTicks();
    await Promise.resolve();
    expect(client.state.state).toBe("signed-out");
  });

  it("after a reconnect notice, moves to another pod once its answers end", () => {
    const { client, sockets, last, seen } = setup({ random: () => 0 });
    client.start();
    last().accept();
    last().push(start("st1"));
    last().push(delta("st1", 1));
    last().push({ type: "reconnect", reason: "draining", after_ms: 5000 });
    vi.advanceTimersByTime(10);
    expect(sockets).toHaveLength(1); // the answer still runs here
    last().push(delta("st1", 2));
    last().push(end("st1", 2));
    vi.advanceTimersByTime(10);
    expect(sockets[0]?.closedByClient).not.toBeNull();
    expect(sockets).toHaveLength(2);
    expect(seen.ends).toEqual(["st1"]);
  });
});

describe("streams", () => {
  it("resumes from the last seq after a drop, with no gap and no duplicate", () => {
    const { client, last, seen } = setup();
    client.start();
    last().accept();
    last().push(start("st1"));
    for (const seq of [1, 2, 3]) last().push(delta("st1", seq));
    last().drop(1006);
    vi.advanceTimersByTime(client.state.retryInMs ?? 0);
    last().accept();
    expect(last().sentOf("resume")).toEqual([
      expect.objectContaining({ type: "resume", stream: "st1", after: 3 }),
    ]);
    expect(client.state.resumed).toBe(1);
    // The server's replay may overlap what was seen.
    for (const seq of [3, 4, 5]) last().push(delta("st1", seq));
    last().push(end("st1", 5));
    last().push(end("st1", 5));
    expect(seen.deltas.map(([, seq]) => seq)).toEqual([1, 2, 3, 4, 5]);
    expect(seen.ends).toEqual(["st1"]);
    expect(client.stats.duplicates).toBe(2);
  });

  it("asks for a replay on a gap and drops frames until it is filled", () => {
    const { client, last, seen } = setup();
    client.start();
    last().accept();
    last().push(start("st1"));
    last().push(delta("st1", 1));
    last().push(delta("st1", 3));
    last().push(delta("st1", 4));
    expect(last().sentOf("resume")).toEqual([expect.objectContaining({ stream: "st1", after: 1 })]);
    for (const seq of [2, 3, 4]) last().push(delta("st1", seq));
    expect(seen.deltas.map(([, seq]) => seq)).toEqual([1, 2, 3, 4]);
    expect(client.stats.gaps).toBe(2);
  });

  it("an end announcing more deltas than seen asks for them first", () => {
    const { client, last, seen } = setup();
    client.start();
    last().accept();
    last().push(start("st1"));
    last().push(delta("st1", 1));
    last().push(end("st1", 2));
    expect(seen.ends).toEqual([]);
    expect(last().sentOf("resume")).toEqual([expect.objectContaining({ after: 1 })]);
    last().push(delta("st1", 2));
    last().push(end("st1", 2));
    expect(seen.ends).toEqual(["st1"]);
  });

  it("adopts running streams of an opened session from their seq", () => {
    const { client, last, seen } = setup();
    const adopted: string[] = [];
    client.on("session", ({ adopted: a }) => adopted.push(...a));
    client.start();
    last().accept();
    client.open("s1");
    const open = last().sentOf("open")[0];
    last().push({
      type: "session",
      ref: open?.id ?? null,
      session: "s1",
      course: "demo",
      title: "q",
      messages: [],
      streams: [{ stream: "st9", ask: "x", seq: 5, text: "so far" }],
      presence: [],
    });
    last().push(delta("st9", 5));
    last().push(delta("st9", 6));
    expect(adopted).toEqual(["st9"]);
    expect(seen.deltas.map(([, seq]) => seq)).toEqual([6]);
  });

  it("re-opens joined sessions after a reconnect", () => {
    const { client, last } = setup();
    client.start();
    last().accept();
    client.open("s1");
    last().drop(1011);
    vi.advanceTimersByTime(client.state.retryInMs ?? 0);
    last().accept();
    expect(last().sentOf("open").map((f) => f.session)).toEqual(["s1"]);
  });
});

describe("outbox", () => {
  it("keeps asks made offline and sends them once connected", () => {
    const { client, last } = setup();
    client.start();
    const id = client.ask({ session: "s1", course: "demo", text: "why?", mode: "hint" });
    expect(client.state.queued).toBe(1);
    expect(last().sent).toEqual([]);
    last().accept();
    expect(last().sentOf("ask")).toEqual([
      { type: "ask", id, session: "s1", course: "demo", text: "why?", mode: "hint" },
    ]);
    expect(client.state.queued).toBe(0);
  });

  it("sends an ask lost in a drop again only if the server never got it", () => {
    const { client, last } = setup();
    client.start();
    last().accept();
    const lost = client.ask({ session: "s1", course: "demo", text: "lost?", mode: "explain" });
    const got = client.ask({ session: "s2", course: "demo", text: "got?", mode: "explain" });
    last().drop(1006);
    vi.advanceTimersByTime(client.state.retryInMs ?? 0);
    const sock = last();
    sock.accept();
    const opens = sock.sentOf("open");
    expect(opens.map((o) => o.session).sort()).toEqual(["s1", "s2"]);
    const openOf = (s: string) => opens.find((o) => o.session === s)?.id ?? null;
    // s1 does not exist: its ask never arrived.
    sock.push({ type: "error", code: "session_forbidden", message: "no", ref: openOf("s1") });
    // s2 shows the answer running for the ask.
    sock.push({
      type: "session",
      ref: openOf("s2"),
      session: "s2",
      course: "demo",
      title: "got?",
      messages: [],
      streams: [{ stream: "st2", ask: got, seq: 2, text: "ab" }],
      presence: [],
    });
    expect(sock.sentOf("ask").map((a) => a.id)).toEqual([lost]);
    expect(client.inflight.size).toBe(1);
  });

  it("an ask refused by a draining pod is sent again on the next connection", () => {
    const { client, sockets, last } = setup({ random: () => 0 });
    client.start();
    last().accept();
    const id = client.ask({ session: "s1", course: "demo", text: "q", mode: "explain" });
    last().push({ type: "error", code: "draining", message: "restarting", ref: id });
    vi.advanceTimersByTime(10);
    expect(sockets).toHaveLength(2);
    last().accept();
    expect(last().sentOf("ask").map((a) => a.id)).toEqual([id]);
  });
});
