// Keyboard only, and a phone. At desktop width a user who never touches the mouse: Escape puts
// the cursor in the message box, Shift+Tab walks back to the room list (every stop has an
// accessible name), Enter opens the room there, and the cursor is back in the message box to
// type. At 390x844 the ☰ button opens the sidebar drawer over the log, it lists the rooms,
// and choosing one closes it and opens that room. Run by crates/chinwag/tests/web_features.rs.
import { check, PHONE, run, step, User, WAIT } from "./lib.mjs";

const nonce = Date.now().toString(36).slice(-5);
const first = `#keys-a-${nonce}`;
const second = `#keys-b-${nonce}`;

/** In the page: the focused element's accessible name, roughly as a screen reader finds it. */
function focused() {
  const el = document.activeElement;
  if (!el || el === document.body) return { id: "", name: "", tag: "body" };
  const name = el.getAttribute("aria-label") || [...(el.labels ?? [])].map((l) => l.textContent.trim()).join(" ")
    || el.textContent.trim() || el.getAttribute("title") || "";
  return { id: el.id, name, tag: el.tagName.toLowerCase(), cls: el.className };
}

await run(async (browser) => {
  step("keyboard: two rooms open, the second shown");
  const kim = await new User(browser, "kim").start();
  await kim.login(`kim${nonce}`);
  await kim.open(first);
  await kim.open(second);
  await kim.page.locator("#log").focus();
  check((await kim.page.evaluate(focused)).id === "log", "the focus starts away from the message box");

  step("Escape puts the cursor in the message box");
  await kim.page.keyboard.press("Escape");
  check((await kim.page.evaluate(focused)).id === "input", "Escape focuses the message box");
  await kim.page.keyboard.type(`typed without a mouse ${nonce}`);
  await kim.page.keyboard.press("Enter");
  await kim.waitLine(`typed without a mouse ${nonce}`);

  step("Shift+Tab reaches the room list, Enter opens the first room");
  const stops = [];
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await kim.page.keyboard.press("Shift+Tab");
    const f = await kim.page.evaluate(focused);
    stops.push(f);
    check(f.tag === "body" || f.name !== "", `every stop has an accessible name: ${JSON.stringify(f)}`);
    reached = f.tag === "button" && String(f.cls).includes("buffer-btn") && f.name === first;
  }
  check(reached, `Shift+Tab reaches ${first} in the room list; stops: ${stops.map((s) => s.name || s.tag).join(" | ")}`);
  await kim.page.keyboard.press("Enter");
  await kim.waitFor((r) => document.querySelector("#title").textContent === r, `${first} open by Enter`, first);
  check(await kim.page.getAttribute(`#buffers .buffer-btn[aria-label="${first}"]`, "aria-current") === "page",
    "the room list marks the open room as current");
  check((await kim.page.evaluate(focused)).id === "input", "after opening a room the cursor is in the message box");
  await kim.page.keyboard.type(`in the first room ${nonce}`);
  await kim.page.keyboard.press("Enter");
  await kim.waitLine(`in the first room ${nonce}`);
  check(kim.problems().length === 0, kim.problems().join("\n"));
  await kim.close();

  step("phone: the drawer opens, lists the rooms, and closes on a choice");
  const pat = await new User(browser, "pat", PHONE).start();
  await pat.login(`pat${nonce}`);
  await pat.open(first);
  await pat.open(second);
  const sidebar = pat.page.locator("#sidebar");
  const onScreen = async () => {
    const box = await sidebar.boundingBox();
    return box !== null && box.x > -1 && box.x + box.width <= PHONE.width + 1;
  };
  check(!(await onScreen()), "the sidebar starts off screen on a phone");
  const menu = pat.page.getByRole("button", { name: "Show rooms and conversations" });
  check(await menu.isVisible(), "the ☰ button is shown on a phone");
  await menu.click();
  await pat.waitFor(() => document.querySelector("#sidebar").getBoundingClientRect().x > -1, "the drawer slid in");
  check(await menu.getAttribute("aria-expanded") === "true", "☰ says the drawer is open");
  check(await pat.page.locator("#scrim").isVisible(), "the log is dimmed behind the drawer");
  for (const r of [first, second]) {
    check(await pat.page.getByRole("button", { name: r, exact: true }).isVisible(), `the drawer lists ${r}`);
  }
  await pat.page.getByRole("button", { name: first, exact: true }).click();
  await pat.waitFor((r) => document.querySelector("#title").textContent === r, `${first} open from the drawer`, first);
  await pat.waitFor(() => document.querySelector("#sidebar").getBoundingClientRect().right <= 1, "the drawer slid away", null, WAIT);
  check(await menu.getAttribute("aria-expanded") === "false", "☰ says the drawer is closed");
  check(!(await pat.page.locator("#scrim").isVisible()), "the log is not dimmed any more");
  check(await pat.page.getByLabel("Message", { exact: true }).isVisible(), "the message box is usable");
  check(pat.problems().length === 0, pat.problems().join("\n"));
});
