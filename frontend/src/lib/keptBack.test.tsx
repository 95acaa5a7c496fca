import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";

import { Message } from "../components/Message";
import type { ChatMessage } from "../state/chat";
import { KEPT_BACK, keptBackDetail } from "./keptBack";
import { Markdown } from "./markdown";

const REPLACEMENT = "(The tutor kept this back: it would give the answer away.)";
const TEXT = `Look at the form of the argument. ${REPLACEMENT} Which premise carries it?`;
const RANGE = { start: TEXT.indexOf(REPLACEMENT), end: TEXT.indexOf(REPLACEMENT) + REPLACEMENT.length };

const hint = (extra: Partial<ChatMessage>): ChatMessage => ({
  key: "stream:s1",
  role: "tutor",
  text: TEXT,
  mode: "hint",
  stream: "s1",
  status: "done",
  reason: "stop",
  sources: [],
  createdAt: 1,
  ...extra,
});

describe("kept-back markers", () => {
  it("reads what the replacement text adds to the marker's words", () => {
    expect(keptBackDetail(REPLACEMENT)).toBe("it would give the answer away.");
    expect(keptBackDetail("The tutor kept this back…")).toBe("");
    expect(keptBackDetail("Read page 3 again first.")).toBe("Read page 3 again first.");
  });

  it("shows a withheld part as a labelled note in its paragraph, the rest as text", () => {
    const html = renderToStaticMarkup(<Markdown text={TEXT} keptBack={[RANGE]} />);
    expect(html.match(/<p>/g)).toHaveLength(1);
    expect(html).toContain(`role="note" aria-label="${KEPT_BACK}: it would give the answer away."`);
    expect(html).toContain("Look at the form of the argument. <span");
    expect(html).toContain("</span> Which premise carries it?");
    expect(html).not.toContain(REPLACEMENT);
  });

  it("keeps marks inside lists and emphasis, and code as written", () => {
    const text = "- first\n- **Hidden.** done\n\n`code`";
    const start = text.indexOf("Hidden.");
    const html = renderToStaticMarkup(<Markdown text={text} keptBack={[{ start, end: start + 7 }]} />);
    expect(html).toContain('<li><strong><span role="note"');
    expect(html).toContain('<code class="md-code">code</code>');
  });

  it("shows a hint's rung, the hint-only note and the marker once the hint ended", () => {
    const done = renderToStaticMarkup(<Message message={hint({ hintLevel: 2, hintOnly: true, withheld: [RANGE] })} />);
    expect(done).toContain("Hint 2 of 4");
    expect(done).toContain("Answered with a hint");
    expect(done).toContain('data-testid="kept-back"');
    // While it streams, the server's replacement text shows as it arrived.
    const streaming = renderToStaticMarkup(<Message message={hint({ status: "streaming", hintLevel: 1, withheld: [RANGE] })} />);
    expect(streaming).toContain("Hint 1 of 4");
    expect(streaming).not.toContain('data-testid="kept-back"');
    expect(streaming).toContain(REPLACEMENT);
  });
});
