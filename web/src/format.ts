// IRC formatting codes (bold, italics, underline, strike-through, monospace, reverse, colours,
// reset) and links, turned into plain data: a list of runs of text, each with its style. The
// renderer (render.ts) makes DOM text nodes from these runs; no HTML is ever built from a
// message.

export interface Style {
  bold: boolean;
  italic: boolean;
  underline: boolean;
  strike: boolean;
  mono: boolean;
  reverse: boolean;
  /** A colour: "0".."98" (mIRC numbers) or "#rrggbb" (from \x04); "" for none. */
  fg: string;
  bg: string;
}

export interface Run {
  text: string;
  style: Style;
  /** The link's target when this run is a link: always an http: or https: URL. */
  href?: string;
}

const PLAIN: Style = { bold: false, italic: false, underline: false, strike: false, mono: false, reverse: false, fg: "", bg: "" };

/** The 99 colours of the mIRC palette (0–15 classic, 16–98 extended). */
export const PALETTE: readonly string[] = [
  "#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
  "#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
  "#470000", "#472100", "#474700", "#324700", "#004700", "#00472c", "#004747", "#002747",
  "#000047", "#2e0047", "#470047", "#47002a", "#740000", "#743a00", "#747400", "#517400",
  "#007400", "#007449", "#007474", "#004074", "#000074", "#4b0074", "#740074", "#740045",
  "#b50000", "#b56300", "#b5b500", "#7db500", "#00b500", "#00b571", "#00b5b5", "#0063b5",
  "#0000b5", "#7500b5", "#b500b5", "#b5006b", "#ff0000", "#ff8c00", "#ffff00", "#b2ff00",
  "#00ff00", "#00ffa0", "#00ffff", "#008cff", "#0000ff", "#a500ff", "#ff00ff", "#ff0098",
  "#ff5959", "#ffb459", "#ffff71", "#cfff60", "#6fff6f", "#65ffc9", "#6dffff", "#59b4ff",
  "#5959ff", "#c459ff", "#ff66ff", "#ff59bc", "#ff9c9c", "#ffd39c", "#ffff9c", "#e2ff9c",
  "#9cff9c", "#9cffdb", "#9cffff", "#9cd3ff", "#9c9cff", "#dc9cff", "#ff9cff", "#ff94d3",
  "#000000", "#131313", "#282828", "#363636", "#4d4d4d", "#656565", "#818181", "#9f9f9f",
  "#bcbcbc", "#e2e2e2", "#ffffff",
];

/** A colour as CSS, or "" if it is none or not a colour. */
export function cssColour(colour: string): string {
  if (/^#[0-9a-f]{6}$/i.test(colour)) return colour.toLowerCase();
  const n = Number(colour);
  return colour !== "" && Number.isInteger(n) && n >= 0 && n < PALETTE.length ? PALETTE[n] : "";
}

/** Splits text with IRC formatting codes into styled runs (links not yet found). */
export function parseFormatting(text: string): Run[] {
  const runs: Run[] = [];
  let style: Style = { ...PLAIN };
  let buf = "";
  const flush = () => {
    if (buf) runs.push({ text: buf, style: { ...style } });
    buf = "";
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const toggle = (key: "bold" | "italic" | "underline" | "strike" | "mono" | "reverse") => {
      flush();
      style = { ...style, [key]: !style[key] };
    };
    switch (c) {
      case "\x02": toggle("bold"); break;
      case "\x1d": toggle("italic"); break;
      case "\x1f": toggle("underline"); break;
      case "\x1e": toggle("strike"); break;
      case "\x11": toggle("mono"); break;
      case "\x16": toggle("reverse"); break;
      case "\x0f": flush(); style = { ...PLAIN }; break;
      case "\x03": {
        flush();
        const m = /^(\d{1,2})(?:,(\d{1,2}))?/.exec(text.slice(i + 1));
        if (!m) {
          style = { ...style, fg: "", bg: "" };
        } else {
          style = { ...style, fg: String(Number(m[1])), bg: m[2] !== undefined ? String(Number(m[2])) : style.bg };
          i += m[0].length;
        }
        break;
      }
      case "\x04": {
        flush();
        const m = /^([0-9a-f]{6})(?:,([0-9a-f]{6}))?/i.exec(text.slice(i + 1));
        if (!m) {
          style = { ...style, fg: "", bg: "" };
        } else {
          style = { ...style, fg: `#${m[1]}`, bg: m[2] !== undefined ? `#${m[2]}` : style.bg };
          i += m[0].length;
        }
        break;
      }
      default:
        // Other control characters (and the bidi overrides, which could make text read
        // backwards) are not shown.
        if (HIDDEN.test(c)) break;
        buf += c;
    }
  }
  flush();
  return runs;
}

/** Control characters and the bidi embeddings, overrides and isolates: never shown. */
const HIDDEN = /[\x00-\x08\x0a-\x1f\x7f\u202a-\u202e\u2066-\u2069]/;
const HIDDEN_ALL = new RegExp(HIDDEN.source, "g");

/**
 * Removes every formatting code: the plain words, for notifications, mentions and searches.
 * The lines of a multiline message are joined by a space.
 */
export function stripFormatting(text: string): string {
  return text.split("\n").map((line) => parseFormatting(line).map((r) => r.text).join("")).join(" ");
}

/**
 * A name from the network (nick, room, network, real name, account) as the page shows it
 * outside a message: without control characters and bidi overrides, so that a room called
 * `#\u202Elapyap` cannot read as another name, nor turn the text after it around (in the
 * sidebar, a title, a notification or the page's title).
 */
export function shown(name: string): string {
  return name.replace(HIDDEN_ALL, "");
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

/**
 * A link target if `candidate` is a well-formed http(s) URL, or null. A URL with a user name
 * or password is no link: `http://bank.example@evil.example/` goes to evil.example.
 */
export function safeHref(candidate: string): string | null {
  try {
    const url = new URL(candidate);
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    if (url.username || url.password) return null;
    return url.href;
  } catch {
    return null;
  }
}

/**
 * What a link shows: its text, unless the browser would go to another host than the text
 * names (a lookalike in another script such as `https://\u0430pple.com`, which the browser
 * loads as `xn--pple-43d.com`, or a full-width dot); then the address it really opens.
 */
function linkText(text: string, href: string): string {
  const written = /^https?:\/\/([^/?#]*)/i.exec(text)?.[1]?.toLowerCase() ?? "";
  return written === new URL(href).host ? text : href;
}

/** Splits runs further so that each http(s) link is a run of its own with `href` set. */
export function linkify(runs: Run[]): Run[] {
  const out: Run[] = [];
  for (const run of runs) {
    let last = 0;
    for (const m of run.text.matchAll(URL_RE)) {
      let found = m[0];
      // Punctuation that ends a sentence is not part of the link.
      const trail = /[.,;:!?)\]}]+$/.exec(found);
      if (trail && !(trail[0].startsWith(")") && found.includes("("))) found = found.slice(0, -trail[0].length);
      const href = safeHref(found);
      const at = m.index ?? 0;
      if (!href) continue;
      if (at > last) out.push({ text: run.text.slice(last, at), style: run.style });
      out.push({ text: linkText(found, href), style: run.style, href });
      last = at + found.length;
    }
    if (last < run.text.length) out.push({ text: run.text.slice(last), style: run.style });
  }
  return out;
}

/** Formatting and links in one step: what a message line shows. */
export function formatMessage(text: string): Run[] {
  return linkify(parseFormatting(text));
}
