// SASL SCRAM-SHA-256 (RFC 5802, RFC 7677), the client's side, sans-IO and synchronous (the
// session is: WebCrypto's digests are promises). SHA-256, HMAC and PBKDF2 are written out here,
// checked against the RFCs' vectors by the unit tests. What "remember me" keeps is the
// exchange's keys (`ScramKeys`), never the password: they log in to this server as the account,
// but do not give the password away for other places where it may be used.

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const padded = new Uint8Array(Math.ceil((data.length + 9) / 64) * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(data.length / 0x20000000));
  view.setUint32(padded.length - 4, (data.length * 8) >>> 0);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15], b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((x, i) => outView.setUint32(i * 4, x));
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** HMAC-SHA-256. */
export function hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256(key) : key);
  const inner = block.map((x) => x ^ 0x36);
  const outer = block.map((x) => x ^ 0x5c);
  return sha256(concat(outer, sha256(concat(inner, data))));
}

/** PBKDF2-HMAC-SHA-256 with a 32-byte result (one block): SCRAM's SaltedPassword. */
export function pbkdf2(password: Uint8Array, salt: Uint8Array, iterations: number): Uint8Array {
  let u = hmac(password, concat(salt, new Uint8Array([0, 0, 0, 1])));
  const out = u.slice();
  for (let i = 1; i < iterations; i++) {
    u = hmac(password, u);
    for (let j = 0; j < 32; j++) out[j] ^= u[j];
  }
  return out;
}

const utf8 = (text: string) => new TextEncoder().encode(text);

export function toB64(bytes: Uint8Array): string {
  let bin = "";
  bytes.forEach((b) => (bin += String.fromCharCode(b)));
  return btoa(bin);
}

/** Base64 to bytes; null if it is not base64. */
export function fromB64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** What a SCRAM login needs instead of the password, for one account's salt and iterations. */
export interface ScramKeys {
  salt: string;
  iterations: number;
  clientKey: string;
  serverKey: string;
}

/** The keys for `password` (PBKDF2 first: about 4096 × 2 hashes). */
export function deriveKeys(password: string, salt: string, iterations: number): ScramKeys {
  const salted = pbkdf2(utf8(password), fromB64(salt) ?? new Uint8Array(), iterations);
  return { salt, iterations, clientKey: toB64(hmac(salted, utf8("Client Key"))), serverKey: toB64(hmac(salted, utf8("Server Key"))) };
}

/** Whether `v` has the shape of ScramKeys (from storage, which anyone may have edited). */
export function isScramKeys(v: unknown): v is ScramKeys {
  const k = v as Partial<ScramKeys> | null;
  return typeof k === "object" && k !== null && typeof k.salt === "string" && Number.isInteger(k.iterations)
    && (k.iterations ?? 0) > 0 && typeof k.clientKey === "string" && typeof k.serverKey === "string";
}

/** `n=` and `a=` values: "=" and "," written as =3D and =2C. */
function saslName(name: string): string {
  return name.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

/** One SCRAM exchange, the client's side. */
export class ScramExchange {
  private bare: string;
  private expected: Uint8Array | null = null;
  /** The keys the proof was made with (derived from the password, or the saved ones). */
  keys: ScramKeys | null = null;

  constructor(user: string, private nonce: string) {
    this.bare = `n=${saslName(user)},r=${nonce}`;
  }

  /** The client-first message. */
  first(): string {
    return `n,,${this.bare}`;
  }

  /**
   * The client-final message for the server-first one, with the saved keys if they are for
   * this salt and count, else keys derived from `password`. A string error if the server's
   * message is not well formed or nothing can answer it.
   */
  final(serverFirst: string, saved: ScramKeys | null, password: string): { message: string } | { error: string } {
    const fields = new Map(serverFirst.split(",").map((f) => [f.slice(0, 1), f.slice(2)] as const));
    const nonce = fields.get("r") ?? "";
    const salt = fields.get("s") ?? "";
    const iterations = Number(fields.get("i"));
    if (!nonce.startsWith(this.nonce) || nonce.length <= this.nonce.length || !fromB64(salt) || !Number.isInteger(iterations)) {
      return { error: "the server's SCRAM message is not well formed" };
    }
    // A server asking for fewer rounds than RFC 7677's minimum would make the keys cheap to guess.
    if (iterations < 4096 || iterations > 1_000_000) return { error: "the server asks for an unsafe SCRAM iteration count" };
    const keys = saved && saved.salt === salt && saved.iterations === iterations ? saved : password ? deriveKeys(password, salt, iterations) : null;
    if (!keys) return { error: "the saved login is out of date: log in again" };
    const withoutProof = `c=biws,r=${nonce}`;
    const auth = utf8(`${this.bare},${serverFirst},${withoutProof}`);
    const clientKey = fromB64(keys.clientKey) ?? new Uint8Array(32);
    const signature = hmac(sha256(clientKey), auth);
    const proof = clientKey.map((x, i) => x ^ signature[i]);
    this.expected = hmac(fromB64(keys.serverKey) ?? new Uint8Array(32), auth);
    this.keys = keys;
    return { message: `${withoutProof},p=${toB64(proof)}` };
  }

  /** Whether the server-final message proves the server knows the account's keys. */
  verify(serverFinal: string): boolean {
    return this.expected !== null && serverFinal === `v=${toB64(this.expected)}`;
  }
}
