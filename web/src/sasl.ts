// The client's side of a SASL login, sans-IO: SCRAM-SHA-256 where the server offers it (with the
// password, or with the keys "remember me" saved instead of it), else PLAIN; PLAIN again only
// when SCRAM failed before its proof (an account made before the server kept SCRAM keys) and
// the password is at hand. The session sends what this returns as AUTHENTICATE lines.

import { fromB64, ScramExchange, toB64, type ScramKeys } from "./scram";

/** What the client logs in with: the password, or saved SCRAM keys, or both. */
export interface Credentials {
  account: string;
  password: string;
  scram?: ScramKeys;
}

/** A payload as AUTHENTICATE parameters: base64 in 400-byte chunks, "+" after a full one. */
export function authenticateChunks(payload: string): string[] {
  const b64 = toB64(new TextEncoder().encode(payload));
  const chunks: string[] = [];
  for (let i = 0; i < b64.length; i += 400) chunks.push(b64.slice(i, i + 400));
  if (b64.length % 400 === 0) chunks.push("+");
  return chunks;
}

/** A fresh client nonce (18 random bytes, base64: no comma). */
export function randomNonce(): string {
  return toB64(crypto.getRandomValues(new Uint8Array(18)));
}

export class SaslLogin {
  private step: "" | "plain" | "scram-start" | "scram-final" | "scram-verify" = "";
  private exchange: ScramExchange | null = null;
  private received = "";
  private triedPlain = false;
  /** The keys of a SCRAM login the server proved it knows; null after PLAIN. */
  keys: ScramKeys | null = null;

  constructor(private creds: Credentials, private nonce: () => string = randomNonce) {}

  /** The mechanism to ask for, given the server's `sasl` capability value (its mechanisms, or
   * "" if it lists none), or null if none can be used. */
  begin(offered: string): string | null {
    const mechs = offered.split(",").map((m) => m.trim().toUpperCase()).filter((m) => m);
    const has = (m: string) => mechs.length === 0 || mechs.includes(m);
    if (has("SCRAM-SHA-256") && (this.creds.scram || this.creds.password)) {
      this.step = "scram-start";
      return "SCRAM-SHA-256";
    }
    return this.plain(has("PLAIN"));
  }

  private plain(offered: boolean): string | null {
    if (!offered || !this.creds.password || this.triedPlain) return null;
    this.triedPlain = true;
    this.step = "plain";
    return "PLAIN";
  }

  /** The answer to the server's `AUTHENTICATE <param>`: parameters to send, a reason to give
   * up, or null when nothing is to be sent (a part of a longer message, or nothing asked). */
  answer(param: string): { send: string[] } | { fail: string } | null {
    const a = this.creds;
    if (this.step === "plain" && param === "+") {
      this.step = "";
      return { send: authenticateChunks(`${a.account}\0${a.account}\0${a.password}`) };
    }
    if (this.step === "scram-start" && param === "+") {
      this.exchange = new ScramExchange(a.account, this.nonce());
      this.step = "scram-final";
      this.received = "";
      return { send: authenticateChunks(this.exchange.first()) };
    }
    if ((this.step !== "scram-final" && this.step !== "scram-verify") || !this.exchange) return null;
    // The server's message may come in 400-byte parts.
    if (param !== "+") this.received += param;
    if (param.length === 400 || this.received.length > 4000) return this.received.length > 4000 ? this.abort("the server's SCRAM message is too long") : null;
    const bytes = fromB64(this.received);
    this.received = "";
    const text = bytes ? new TextDecoder().decode(bytes) : "";
    if (this.step === "scram-final") {
      const out = this.exchange.final(text, a.scram ?? null, a.password);
      if ("error" in out) return this.abort(out.error);
      this.step = "scram-verify";
      return { send: authenticateChunks(out.message) };
    }
    this.step = "";
    if (!this.exchange.verify(text)) return this.abort("the server could not prove it knows your account");
    this.keys = this.exchange.keys;
    return { send: ["+"] };
  }

  private abort(reason: string): { fail: string } {
    this.step = "";
    this.exchange = null;
    return { fail: reason };
  }

  /** The server refused the login (904 and the like): the mechanism to try instead, or null.
   * Only a SCRAM that failed before its proof is tried again, with PLAIN: after the proof, a
   * refusal means a wrong password, and PLAIN would only send it in the clear. */
  failed(): string | null {
    const beforeProof = this.step === "scram-final" || this.step === "scram-start";
    this.step = "";
    this.exchange = null;
    return beforeProof ? this.plain(true) : null;
  }
}
