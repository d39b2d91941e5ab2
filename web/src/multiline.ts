// draft/multiline (IRCv3): a message of several lines cut into batches that fit the limits the
// server advertises, and a received batch put back together as one message. No I/O.

import type { Message } from "./irc";
import type { Batch } from "./session";

/** draft/multiline's limits, as the server advertises them. */
export interface MultilineLimits { maxBytes: number; maxLines: number }

/** The limits in the capability's value (`max-bytes=4096,max-lines=100`); null without
 * max-bytes, which the specification requires. */
export function multilineLimits(value: string): MultilineLimits | null {
  const field = (name: string) => Number(new RegExp(`(?:^|,)${name}=(\\d+)`).exec(value)?.[1] ?? NaN);
  const maxBytes = field("max-bytes");
  if (!(maxBytes > 0)) return null;
  const maxLines = field("max-lines");
  return { maxBytes, maxLines: maxLines > 0 ? maxLines : Infinity };
}

/**
 * The lines cut into batches that fit the limits: each line longer than fits an IRC line
 * is cut into pieces joined back with draft/multiline-concat ([text, concat] pairs).
 */
export function multilineGroups(target: string, lines: string[], limits: MultilineLimits): [string, boolean][][] {
  const bytes = (t: string) => new TextEncoder().encode(t).length;
  // What a PRIVMSG line leaves for its text, in bytes (512 with CR LF, tags not counted).
  const room = Math.max(64, Math.min(limits.maxBytes, 510 - bytes(`PRIVMSG ${target} :`)));
  const pieces: [string, boolean][] = [];
  for (const line of lines) {
    let rest = line;
    let first = true;
    do {
      // A character is at least a byte: no more than `room` of them fit.
      let cut = Math.min(rest.length, room);
      while (bytes(rest.slice(0, cut)) > room) cut = Math.floor(cut * 0.9);
      // Not inside a surrogate pair, and after a space where there is one in the second half.
      if (cut < rest.length && /[\udc00-\udfff]/.test(rest[cut] ?? "")) cut--;
      const space = rest.lastIndexOf(" ", cut - 1);
      if (cut < rest.length && space + 1 > cut / 2) cut = space + 1;
      pieces.push([rest.slice(0, cut), !first]);
      rest = rest.slice(cut);
      first = false;
    } while (rest.length > 0);
  }
  const groups: [string, boolean][][] = [];
  let group: [string, boolean][] = [];
  let used = 0;
  for (const piece of pieces) {
    const cost = bytes(piece[0]) + (group.length > 0 && !piece[1] ? 1 : 0);
    if (group.length > 0 && (group.length >= limits.maxLines || used + cost > limits.maxBytes)) {
      groups.push(group);
      group = [];
      used = 0;
    }
    // A batch begins with a line of its own, not a continuation.
    group.push(group.length === 0 ? [piece[0], false] : piece);
    used += bytes(piece[0]) + (group.length > 1 && !piece[1] ? 1 : 0);
  }
  if (group.length) groups.push(group);
  return groups;
}

/**
 * A draft/multiline batch as the one message it is: its opening line's source and tags
 * (msgid, time, account), its lines' text joined by "\n" (a line tagged
 * draft/multiline-concat joined to the one before without). Null if it holds no message.
 */
export function multilineMessage(batch: Batch): Message | null {
  const lines = batch.lines.filter((m) => m.command === "PRIVMSG" || m.command === "NOTICE");
  const first = lines[0];
  if (!first) return null;
  let text = "";
  lines.filter((m) => m.command === first.command).forEach((m, i) => {
    if (i > 0 && m.tags["draft/multiline-concat"] === undefined) text += "\n";
    text += m.params[1] ?? "";
  });
  const tags: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(batch.start.tags)) if (k !== "batch") tags[k] = v;
  const source = batch.start.source || first.source;
  const nick = batch.start.source ? batch.start.nick : first.nick;
  return { tags, nick, source, command: first.command, params: [batch.target || (first.params[0] ?? ""), text] };
}
