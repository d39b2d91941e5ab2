// IRC lines: parsing and building, with IRCv3 message tags. No I/O and no DOM: the session and
// the unit tests use this as it is.

/** One IRC message. `tags` values are unescaped; a tag without a value is "". */
export interface Message {
  tags: Record<string, string>;
  /** The prefix's nick (or server name), "" when there is no prefix. */
  nick: string;
  /** The whole prefix as sent, without the colon. */
  source: string;
  command: string;
  params: string[];
}

/** The longest line the client sends: the server's tag limit plus the classic 512 bytes. */
export const MAX_LINE = 8703;

const TAG_UNESCAPE: Record<string, string> = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };

function unescapeTag(value: string): string {
  return value.replace(/\\(.?)/g, (_, c: string) => (c === "" ? "" : (TAG_UNESCAPE[c] ?? c)));
}

function escapeTag(value: string): string {
  return value.replace(/[;\s\\]/g, (c) => ({ ";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n" })[c] ?? "");
}

/** Parses one line (without CR/LF). Returns null for an empty or command-less line. */
export function parse(line: string): Message | null {
  let rest = line.replace(/[\r\n]+$/, "");
  // No prototype: a tag named `__proto__` or `constructor` is a tag like any other, and a
  // lookup of a tag that was not sent never finds one of Object's own properties.
  const tags: Record<string, string> = Object.create(null) as Record<string, string>;
  if (rest.startsWith("@")) {
    const space = rest.indexOf(" ");
    if (space < 0) return null;
    for (const item of rest.slice(1, space).split(";")) {
      if (!item) continue;
      const eq = item.indexOf("=");
      if (eq < 0) tags[item] = "";
      else tags[item.slice(0, eq)] = unescapeTag(item.slice(eq + 1));
    }
    rest = rest.slice(space + 1).replace(/^ +/, "");
  }
  let source = "";
  if (rest.startsWith(":")) {
    const space = rest.indexOf(" ");
    if (space < 0) return null;
    source = rest.slice(1, space);
    rest = rest.slice(space + 1).replace(/^ +/, "");
  }
  const params: string[] = [];
  let command = "";
  while (rest.length > 0) {
    if (rest.startsWith(":") && command) {
      params.push(rest.slice(1));
      break;
    }
    const space = rest.indexOf(" ");
    const word = space < 0 ? rest : rest.slice(0, space);
    rest = space < 0 ? "" : rest.slice(space + 1).replace(/^ +/, "");
    if (!command) command = word.toUpperCase();
    else params.push(word);
  }
  if (!command) return null;
  const bang = source.search(/[!@]/);
  const nick = bang < 0 ? source : source.slice(0, bang);
  return { tags, nick, source, command, params };
}

/** Removes what could end or split a line: a parameter never carries CR, LF or NUL. */
export function clean(text: string): string {
  return text.replace(/[\r\n\0]/g, " ");
}

/**
 * Builds a line. Every parameter but the last must be a single word; the last one may hold
 * spaces (it is sent as a trailing parameter when it needs to be).
 */
export function build(command: string, params: string[] = [], tags: Record<string, string> = {}): string {
  const parts: string[] = [];
  const tagText = Object.entries(tags)
    .map(([k, v]) => (v === "" ? k : `${k}=${escapeTag(v)}`))
    .join(";");
  if (tagText) parts.push(`@${tagText}`);
  parts.push(command);
  params.forEach((raw, i) => {
    const p = clean(raw);
    const last = i === params.length - 1;
    if (last && (p === "" || p.includes(" ") || p.startsWith(":"))) parts.push(`:${p}`);
    else parts.push(p.replace(/ /g, "_") || "*");
  });
  return parts.join(" ");
}

/** IRC casemapping (rfc1459): what the server uses to compare nicks and room names. */
export function fold(name: string): string {
  return name.toLowerCase().replace(/[[\]\\~]/g, (c) => ({ "[": "{", "]": "}", "\\": "|", "~": "^" })[c] ?? c);
}

/** Whether a target is a room (channel) rather than a nick. */
export function isRoom(target: string): boolean {
  return /^[#&]/.test(target);
}
