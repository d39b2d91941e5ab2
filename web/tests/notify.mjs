// Desktop notifications: the context grants the `notifications` permission and an init script
// wraps window.Notification to record every notification the page creates. The client only
// notifies when the user is not looking at the conversation, so the page is made to report
// itself hidden (document.hidden / visibilityState overridden by an init script), as when the
// tab is in the background. A mention in a room and a private message each make one
// notification naming the sender, with the text as text; an ordinary room message makes none.
// Run by crates/chinwag/tests/web_features.rs.
import { check, run, step, User } from "./lib.mjs";

const nonce = Date.now().toString(36).slice(-5);
const A = `ann${nonce}`;
const B = `ben${nonce}`;
const room = `#note-${nonce}`;

/** In the page: record notifications, and say the tab is hidden. */
function recordNotifications() {
  const Real = window.Notification;
  window.__notes = [];
  function Recorded(title, options) {
    window.__notes.push({ title: String(title), body: String(options?.body ?? "") });
    try {
      return new Real(title, options);
    } catch {
      return { close() {}, onclick: null };
    }
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recorded;
  Object.defineProperty(Document.prototype, "hidden", { get: () => true, configurable: true });
  Object.defineProperty(Document.prototype, "visibilityState", { get: () => "hidden", configurable: true });
}

await run(async (browser) => {
  step("ann allows notifications and has her tab in the background");
  const ann = new User(browser, "ann");
  ann.contextOptions = { permissions: ["notifications"] };
  ann.initScripts = [recordNotifications];
  await ann.start();
  check(await ann.page.evaluate(() => Notification.permission) === "granted", "the notifications permission is granted");
  check(await ann.page.evaluate(() => document.hidden), "the page believes it is hidden");
  await ann.login(A);
  await ann.open(room);
  const ben = await new User(browser, "ben").start();
  await ben.login(B);
  await ben.open(room);
  await ann.waitFor((b) => document.querySelector("#member-list").textContent.includes(b), "ben in ann's room", B);
  const notes = () => ann.page.evaluate(() => window.__notes);

  step("an ordinary room message: no notification");
  await ben.say(`just chatting ${nonce}`);
  await ann.waitLine(`just chatting ${nonce}`);

  step("a mention in the room: one notification");
  const mention = `${A}: look <b>here</b> & ${nonce}`;
  await ben.say(`${A}: look \x02<b>here</b>\x02 & ${nonce}`);
  await ann.waitLine(mention);
  await ann.waitFor(() => window.__notes.length >= 1, "a notification for the mention");
  let seen = await notes();
  check(seen.length === 1, `only the mention notified so far (the ordinary message did not): ${JSON.stringify(seen)}`);
  check(seen[0].title.includes(B) && seen[0].title.includes(room), `the title names ben and the room: ${seen[0].title}`);
  check(seen[0].body === mention, `the body is the text, as text, formatting stripped: ${JSON.stringify(seen[0].body)}`);

  step("a private message: one notification");
  await ben.say(`/msg ${A} a secret <i>word</i> ${nonce}`);
  await ann.waitFor(() => window.__notes.length >= 2, "a notification for the private message");
  seen = await notes();
  check(seen.length === 2, `one notification per message: ${JSON.stringify(seen)}`);
  check(seen[1].title.includes(B) && seen[1].title.includes("private"), `the title names ben, privately: ${seen[1].title}`);
  check(seen[1].body === `a secret <i>word</i> ${nonce}`, `the body is the text: ${JSON.stringify(seen[1].body)}`);

  step("another ordinary room message: still no new notification");
  await ben.open(room);
  await ben.say(`back to the room ${nonce}`);
  await ann.open(room);
  await ann.waitLine(`back to the room ${nonce}`);
  check((await notes()).length === 2, `no notification for an ordinary message: ${JSON.stringify(await notes())}`);
  for (const u of [ann, ben]) check(u.problems().length === 0, `${u.name}: ${u.problems().join("\n")}`);
});
