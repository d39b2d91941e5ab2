// Shared pieces of the browser tests: Debian's Chromium driven by playwright-core (never a
// downloaded browser), a user = a browser context on the client page, and the line protocol
// with the Rust test that started the server (crates/chinwag/tests/web_*.rs): the script prints
// `ASK <what>` when it needs the test to act (restart the server, type in irssi) and waits for
// `DONE <what>` on stdin. Every wait has a timeout; a failure prints what the page showed.
import { createInterface } from "node:readline";
import { existsSync, mkdirSync } from "node:fs";

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch {
  console.error("playwright-core is missing: run `npm ci` in web/ (see the README)");
  process.exit(2);
}

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
/** How long one expectation waits. */
export const WAIT = Number(process.env.WEB_TEST_WAIT_MS || 20000);
/** The client's URL, from the Rust test. */
export const URL = process.env.CHINWAG_WEB_URL || process.argv[2];
if (!URL) {
  console.error("CHINWAG_WEB_URL is not set: these scripts are run by crates/chinwag/tests/web_*.rs");
  process.exit(2);
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export async function launch() {
  if (!existsSync(CHROMIUM)) {
    console.error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (see .ci/apt-packages.txt)`);
    process.exit(2);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
}

const lines = createInterface({ input: process.stdin });
const waiting = [];
const arrived = [];
lines.on("line", (line) => {
  const w = waiting.shift();
  if (w) w(line);
  else arrived.push(line);
});

/** Asks the Rust test to do something and waits until it says it is done. */
export async function ask(what, timeout = 60000) {
  console.log(`ASK ${what}`);
  const answer = await new Promise((resolve, reject) => {
    if (arrived.length) return resolve(arrived.shift());
    const timer = setTimeout(() => reject(new Error(`the test did not answer ASK ${what}`)), timeout);
    waiting.push((line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
  if (answer !== `DONE ${what}`) throw new Error(`asked ${what}, got ${answer}`);
}

export function step(text) {
  console.log(`STEP ${text}`);
}

/**
 * A person using the client in a fresh browser context. Page errors, CSP violations and any
 * alert/confirm/prompt are recorded; `problems()` lists them.
 */
export class User {
  constructor(browser, name, viewport = DESKTOP, colorScheme = "light", timezoneId = "UTC") {
    this.timezoneId = timezoneId;
    this.browser = browser;
    this.name = name;
    this.viewport = viewport;
    this.colorScheme = colorScheme;
    this.errors = [];
    this.dialogs = [];
    /** More options for the browser context (e.g. `permissions`), set before `start()`. */
    this.contextOptions = {};
    /** Scripts run in the page before the client's own (`addInitScript`), set before `start()`. */
    this.initScripts = [];
  }

  async start() {
    this.context = await this.browser.newContext({ viewport: this.viewport, ignoreHTTPSErrors: true, colorScheme: this.colorScheme,
      locale: "en-US", timezoneId: this.timezoneId, ...this.contextOptions });
    for (const script of this.initScripts) await this.context.addInitScript(script);
    this.page = await this.context.newPage();
    this.page.on("pageerror", (e) => this.errors.push(`page error: ${e.message}`));
    this.page.on("console", (m) => {
      if (m.type() === "error") this.errors.push(`console: ${m.text()}`);
    });
    if (process.env.WEB_TEST_FRAMES) {
      this.page.on("websocket", (ws) => {
        ws.on("framesent", (f) => console.log(`${this.name} > ${f.payload}`));
        ws.on("framereceived", (f) => console.log(`${this.name} < ${f.payload}`));
      });
    }
    this.page.on("dialog", async (d) => {
      this.dialogs.push(`${d.type()}: ${d.message()}`);
      await d.dismiss().catch(() => {});
    });
    await this.page.goto(URL);
    return this;
  }

  /** Fills the login form: mode is "guest", "login" or "register". */
  async login(nick, mode = "guest", password = "", remember = false) {
    const p = this.page;
    await p.getByLabel(mode === "guest" ? "Guest" : mode === "login" ? "Log in" : "Register", { exact: true }).check();
    await p.getByLabel("Nick", { exact: true }).fill(nick);
    if (mode !== "guest") await p.getByLabel("Password", { exact: true }).fill(password);
    if (remember) await p.locator("#login-remember").check();
    await p.locator("#login-submit").click();
    await this.waitFor(() => document.querySelector("#me-dot")?.className === "dot", "signed in", []);
    if (mode !== "guest") await this.waitFor(() => document.querySelector("#me")?.dataset.account, "logged in to the account", []);
  }

  /** Waits until `fn(arg)` is truthy in the page. */
  async waitFor(fn, what, arg = null, timeout = WAIT) {
    try {
      await this.page.waitForFunction(fn, arg, { timeout, polling: 100 });
    } catch (e) {
      throw new Error(`${this.name}: timed out waiting for ${what}\n${await this.describe()}`);
    }
  }

  /** Waits for a message line whose text contains `text` in the open buffer. */
  async waitLine(text, what = `a line with ${JSON.stringify(text)}`) {
    await this.waitFor((t) => [...document.querySelectorAll("#log .line .text")].some((n) => n.textContent.includes(t)), what, text);
  }

  async say(text) {
    const box = this.page.getByLabel("Message", { exact: true });
    await box.fill(text);
    await box.press("Enter");
  }

  /** Opens (joining if needed) a room or a conversation by its sidebar entry or /join. */
  async open(name) {
    const entry = this.page.locator("#buffers .buffer-btn", { hasText: new RegExp(`^(@ )?${name.replace(/[#.*+?^${}()|[\]\\]/g, "\\$&")}`) });
    if (await entry.count()) await entry.first().click();
    else await this.say(name.startsWith("#") ? `/join ${name}` : `/query ${name}`);
    await this.waitFor((n) => document.querySelector("#title")?.textContent === n, `${name} open`, name);
  }

  async lineTexts() {
    return this.page.$$eval("#log .line .text", (ns) => ns.map((n) => n.textContent));
  }

  async describe() {
    try {
      const title = await this.page.textContent("#title");
      const status = await this.page.textContent("#status");
      const lines = (await this.lineTexts()).slice(-15).join("\n    ");
      return `  [${this.name}] title=${title} status=${status}\n    ${lines}`;
    } catch (e) {
      return `  [${this.name}] (page unreadable: ${e.message})`;
    }
  }

  problems() {
    return [...this.errors.filter((e) => !/WebSocket|ERR_CONNECTION|Failed to load resource/.test(e)), ...this.dialogs.map((d) => `dialog ${d}`)];
  }

  async shot(file) {
    mkdirSync(new globalThis.URL(".", `file://${file}`).pathname, { recursive: true });
    await this.page.screenshot({ path: file });
  }

  async close() {
    await this.context?.close();
  }
}

/** Runs a scenario: exit 0 when it passes, 1 with the reason when it fails. */
export async function run(scenario) {
  const browser = await launch();
  try {
    await scenario(browser);
    console.log("PASS");
    await browser.close();
    process.exit(0);
  } catch (e) {
    console.log(`FAIL ${e.stack ?? e}`);
    await browser.close().catch(() => {});
    process.exit(1);
  }
}

export function check(ok, message) {
  if (!ok) throw new Error(message);
}
