// Styled runs (format.ts) into DOM nodes. Text from the network only ever becomes a Text node or
// an attribute value set through the DOM API (a link's href, already checked to be http(s)):
// nothing here parses HTML.

import { cssColour, formatMessage, type Run } from "./format";

/** Makes an element with classes and, optionally, text (as a text node). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function runNode(run: Run): Node {
  const s = run.style;
  const plain = !s.bold && !s.italic && !s.underline && !s.strike && !s.mono && !s.reverse && !s.fg && !s.bg;
  let node: HTMLElement;
  if (run.href) {
    const a = el("a", "link", run.text);
    a.href = run.href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    node = a;
  } else if (plain) {
    return document.createTextNode(run.text);
  } else {
    node = el("span", "", run.text);
  }
  if (s.bold) node.classList.add("f-b");
  if (s.italic) node.classList.add("f-i");
  if (s.underline) node.classList.add("f-u");
  if (s.strike) node.classList.add("f-s");
  if (s.mono) node.classList.add("f-m");
  const fg = cssColour(s.reverse ? s.bg : s.fg);
  const bg = cssColour(s.reverse ? s.fg : s.bg);
  // CSSOM properties, not a style attribute: allowed under `style-src 'self'`.
  if (fg) node.style.color = fg;
  if (bg) node.style.backgroundColor = bg;
  if (s.reverse && !fg && !bg) node.classList.add("f-r");
  return node;
}

/**
 * Appends a message's text, formatted and with links, to `parent`. The lines of a multiline
 * message are each formatted on their own (as IRC lines are) and separated by a line break.
 */
export function appendFormatted(parent: HTMLElement, text: string): void {
  text.split("\n").forEach((line, i) => {
    if (i > 0) parent.append(el("br"));
    for (const run of formatMessage(line)) parent.append(runNode(run));
  });
}

/** A nick's colour class (one of 12), the same for a nick everywhere. */
export function nickClass(nick: string): string {
  let h = 0;
  for (const c of nick.toLowerCase()) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `nick-c${h % 12}`;
}
