// Slash commands typed in the message box, turned into session calls.

import type { Session } from "./session";
import { isRoom } from "./irc";

export interface CommandHost {
  session: Session;
  /** The buffer on screen (its name). */
  current(): string;
  open(name: string, join?: boolean): void;
  /** Sends a private or room message, asking first where E2E makes that necessary. */
  sendText(target: string, text: string): void;
  info(text: string): void;
}

export const HELP = "Commands: /join ROOM, /part [ROOM], /msg NICK TEXT, /query NICK, /me ACTION, /topic TEXT, " +
  "/nick NAME, /away [REASON], /back, /kick NICK [REASON], /list, /whois NICK, /quote LINE";

function roomName(name: string): string {
  return isRoom(name) ? name : `#${name}`;
}

/** Runs `/command args`; unknown commands are reported, never sent raw. */
export function runCommand(host: CommandHost, input: string): void {
  const s = host.session;
  const [head, ...rest] = input.slice(1).split(" ");
  const args = rest.join(" ").trim();
  const first = rest.find((x) => x) ?? "";
  const here = host.current();
  switch (head.toLowerCase()) {
    case "join": case "j":
      if (first) host.open(roomName(first), true);
      break;
    case "part": case "leave": case "close":
      s.close(first ? roomName(first) : here);
      host.open(s.serverBuffer().name);
      break;
    case "msg": case "query": case "q": {
      const text = rest.slice(1).join(" ");
      if (!first) break;
      host.open(first);
      if (text) host.sendText(first, text);
      break;
    }
    case "me":
      if (args) s.action(here, args);
      break;
    case "topic":
      if (isRoom(here)) s.send("TOPIC", args ? [here, args] : [here]);
      break;
    case "nick":
      if (first) s.send("NICK", [first]);
      break;
    case "away":
      s.send("AWAY", [args || "away"]);
      break;
    case "back":
      s.send("AWAY");
      break;
    case "kick":
      if (first && isRoom(here)) s.send("KICK", [here, first, rest.slice(1).join(" ") || "kicked"]);
      break;
    case "list":
      s.list();
      break;
    case "whois":
      if (first) s.send("WHOIS", [first]);
      break;
    case "quote": case "raw":
      if (args) s.outbox.push(args.replace(/[\r\n]/g, " "));
      break;
    case "help":
      host.info(HELP);
      break;
    default:
      host.info(`Unknown command /${head}. ${HELP}`);
  }
}
