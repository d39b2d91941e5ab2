// The message log of the buffer on screen: lines in, DOM out (text nodes only, see render.ts),
// appending when lines are only added at the end, redrawing when history came in before them,
// and keeping the reader's place either way.

import type { Buffer, Line } from "./session";
import { shown } from "./format";
import { appendFormatted, el, nickClass } from "./render";

/** Lines from the same nick within this many ms are grouped under one name. */
const GROUP_WINDOW = 5 * 60 * 1000;

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric", year: "numeric" });

function dayKey(time: number): string {
  const d = new Date(time);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function dayLabel(time: number, now: number): string {
  if (dayKey(time) === dayKey(now)) return "Today";
  if (dayKey(time) === dayKey(now - 86400000)) return "Yesterday";
  return dayFormat.format(time);
}

const SPOKEN = new Set(["msg", "action", "notice", "e2e"]);

export class LogView {
  private shownBuffer: Buffer | null = null;
  private shownIds: string[] = [];
  private note: HTMLElement;

  constructor(private root: HTMLElement) {
    this.note = el("div", "history-note");
  }

  /** Whether the view is scrolled to (or near) its end. */
  atBottom(): boolean {
    return this.root.scrollHeight - this.root.scrollTop - this.root.clientHeight < 40;
  }

  render(b: Buffer, note: string): void {
    const ids = b.lines.map((l) => l.id);
    const same = this.shownBuffer === b;
    const stick = !same || this.atBottom();
    const appendOnly = same && ids.length >= this.shownIds.length && this.shownIds.every((id, i) => ids[i] === id);
    const dropped = same && !appendOnly ? this.droppedFront(ids) : 0;
    this.note.textContent = note;
    if (dropped > 0) {
      // A full buffer lost its oldest lines to new ones: their rows go and the new ones are
      // added, instead of drawing all MAX_LINES rows again for every message in a busy room.
      const fromBottom = this.root.scrollHeight - this.root.scrollTop;
      const rows = this.root.querySelectorAll(":scope > .line");
      const keep = rows[dropped];
      while (this.note.nextSibling && this.note.nextSibling !== keep) this.note.nextSibling.remove();
      // The first row kept is drawn again: it now needs its day and its name.
      keep?.remove();
      this.note.after(this.lineNode(b.lines, 0));
      // The reader's place stays where it was: measured from the bottom, before new lines.
      if (!stick) this.root.scrollTop = this.root.scrollHeight - fromBottom;
      for (let i = this.shownIds.length - dropped; i < b.lines.length; i++) this.root.append(this.lineNode(b.lines, i));
    } else if (appendOnly) {
      for (let i = this.shownIds.length; i < b.lines.length; i++) this.root.append(this.lineNode(b.lines, i));
    } else {
      const fromBottom = this.root.scrollHeight - this.root.scrollTop;
      const frag = document.createDocumentFragment();
      frag.append(this.note);
      b.lines.forEach((_, i) => frag.append(this.lineNode(b.lines, i)));
      this.root.replaceChildren(frag);
      if (same && !stick) this.root.scrollTop = this.root.scrollHeight - fromBottom;
    }
    this.shownBuffer = b;
    this.shownIds = ids;
    if (stick) this.root.scrollTop = this.root.scrollHeight;
  }

  /** How many lines left the front of what is shown when the rest is unchanged (0 if that is
   * not what happened). */
  private droppedFront(ids: string[]): number {
    const d = this.shownIds.indexOf(ids[0] ?? "");
    if (d <= 0 || this.shownIds.length - d > ids.length) return 0;
    for (let i = d; i < this.shownIds.length; i++) if (this.shownIds[i] !== ids[i - d]) return 0;
    return d;
  }

  private lineNode(lines: Line[], i: number): DocumentFragment {
    const line = lines[i];
    const prev = i > 0 ? lines[i - 1] : undefined;
    const frag = document.createDocumentFragment();
    if (!prev || dayKey(prev.time) !== dayKey(line.time)) {
      frag.append(el("div", "day", dayLabel(line.time, Date.now())));
    }
    const spoken = SPOKEN.has(line.kind);
    const row = el("div", `line ${line.kind}`);
    row.dataset.id = line.id;
    if (!spoken && line.kind !== "error" && line.kind !== "info" && line.kind !== "notice" && line.kind !== "away") row.classList.add("event");
    if (line.mention) row.classList.add("mention");
    if (line.self) row.classList.add("self");
    const grouped = spoken && line.kind !== "action" && prev !== undefined && SPOKEN.has(prev.kind) && prev.kind !== "action"
      && prev.nick === line.nick && line.time - prev.time < GROUP_WINDOW && dayKey(prev.time) === dayKey(line.time);
    if (spoken && line.nick && line.kind !== "action") row.classList.add(grouped ? "cont" : "first");
    const ts = el("time", "ts", timeFormat.format(line.time));
    ts.dateTime = new Date(line.time).toISOString();
    ts.title = fullFormat.format(line.time);
    const body = el("div", "body");
    if (spoken && line.nick) {
      const nick = el("span", `nick ${nickClass(line.nick)}`, shown(line.kind === "action" ? `* ${line.nick}` : line.nick));
      body.append(nick);

    }
    const text = el("span", "text");
    if (line.kind === "e2e") text.textContent = line.text;
    else appendFormatted(text, line.text);
    body.append(text);
    row.append(ts, body);
    frag.append(row);
    return frag;
  }
}
