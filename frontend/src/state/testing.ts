// Test helpers: a ChatStore on a TutorClient whose socket the test drives by hand.
import { type SocketLike, TutorClient } from "../protocol/client";
import { ChatStore } from "./chat";

/** A socket the test reads (`sent`) and writes (`push` a server frame) directly. */
export type FakeSock = SocketLike & { push(f: unknown): void; sent: string[] };

/** A store whose client is connected and welcomed, as user `ann` with `courses`. */
export function connectedStore(courses: string[]): { store: ChatStore; sock: FakeSock; close: () => void } {
  let sock: FakeSock | null = null;
  const client = new TutorClient({
    url: "ws://test/ws",
    token: () => "t.o.k",
    socket: () => {
      sock = {
        readyState: 1,
        protocol: "",
        onopen: null,
        onmessage: null,
        onclose: null,
        onerror: null,
        sent: [],
        send(data: string) {
          this.sent.push(data);
        },
        close() {},
        push(f: unknown) {
          this.onmessage?.({ data: JSON.stringify(f) });
        },
      };
      return sock;
    },
  });
  const store = new ChatStore(client, () => "t.o.k", { user: "ann", courses });
  const detach = store.attach();
  client.start();
  const s = sock as unknown as FakeSock;
  s.push({ type: "welcome", connection: "c", pod: "p", user: "ann", protocol: 1, limits: { max_frame_bytes: 1, max_question_chars: 99, max_streams: 2, idle_timeout_s: 300 } });
  return {
    store,
    sock: s,
    close: () => {
      detach();
      client.stop();
    },
  };
}
