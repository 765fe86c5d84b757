// The web client in real Chromium (Debian's, driven by playwright-core) against the
// real server binary on a fresh data directory: two people in two browser contexts
// sign in, talk in a room live, and the page survives what the issue lists — unread
// badges, mentions, edits and deletes, IME composition, hostile message bodies, a
// server restart — with no serious or critical axe-core violations. Screenshots of
// the main screens go to docs/screenshots/.
//
//   node web/tests/browser.mjs [path/to/hayabusa]   (default: target/debug/hayabusa)

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const binary = resolve(process.argv[2] ?? join(root, "target/debug/hayabusa"));
const screenshots = join(root, "docs/screenshots");
const axeSource = readFileSync(join(root, "web/node_modules/axe-core/axe.min.js"), "utf8");

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.on("error", fail);
  });
}

const dataDir = mkdtempSync(join(tmpdir(), "hayabusa-web-"));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let server = null;

async function startServer() {
  server = spawn(binary, ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--no-rate-limits"], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the server did not come up");
}

async function stopServer() {
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  await exited;
}

// Whatever fails, the server and the browser go too (and the run fails).
process.on("uncaughtException", (error) => {
  console.error(error);
  server?.kill("SIGKILL");
  process.exit(1);
});
await startServer();
const adminToken = readFileSync(join(dataDir, "admin.token"), "utf8").trim();

async function api(method, path, form, token = adminToken) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "x-chatworktoken": token, "content-type": "application/x-www-form-urlencoded" },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function person(name, mail) {
  const created = await api("POST", "/v2/accounts", { name, mail, login_mail: mail, password: "a good passphrase" });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  return { id: created.body.account_id, token: created.body.api_token ?? created.body.token, name, mail };
}

const aya = await person("Aya Sato", "aya@example.com");
const ben = await person("Ben Ito", "ben@example.com");
const roomAnswer = await api(
  "POST",
  "/v2/rooms",
  { name: "Launch plan", members_admin_ids: String(aya.id), members_member_ids: String(ben.id) },
  aya.token,
);
assert.equal(roomAnswer.status, 200, JSON.stringify(roomAnswer.body));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const problems = [];
async function page(who) {
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1200, height: 760 } });
  const p = await context.newPage();
  p.on("console", (message) => {
    // Failed requests are logged by Chromium (a 401 before signing in, refused
    // connections while the server restarts): expected. Anything else — a script
    // error, a CSP violation — is a problem.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`${who} console: ${message.text()}`);
    }
  });
  p.on("pageerror", (error) => problems.push(`${who} page error: ${error.message}`));
  p.on("dialog", async (dialog) => {
    if (dialog.type() === "confirm") await dialog.accept();
    else {
      problems.push(`${who}: a ${dialog.type()} dialog opened: ${dialog.message()}`);
      await dialog.dismiss();
    }
  });
  return p;
}

async function axe(p, screen) {
  await p.evaluate(axeSource);
  const result = await p.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) problems.push(`axe on ${screen}: ${v.id} (${v.impact}): ${v.help}`);
}

const step = async (name, run) => {
  const started = Date.now();
  await run();
  console.log(`  ok  ${name} (${Date.now() - started} ms)`);
};

const a = await page("Aya");
const b = await page("Ben");
mkdirSync(screenshots, { recursive: true });

await step("the sign-in form, a wrong password, then signing in", async () => {
  for (const p of [a, b]) await p.goto(base);
  await a.getByRole("button", { name: "Sign in" }).waitFor();
  await axe(a, "sign-in");
  await a.screenshot({ path: join(screenshots, "sign-in.png") });
  await a.getByLabel("Email").fill(aya.mail);
  await a.getByLabel("Password").fill("not the passphrase");
  await a.getByRole("button", { name: "Sign in" }).click();
  await a.getByRole("alert").waitFor();
  await a.getByLabel("Password").fill("a good passphrase");
  await a.getByRole("button", { name: "Sign in" }).click();
  await b.getByLabel("Email").fill(ben.mail);
  await b.getByLabel("Password").fill("a good passphrase");
  await b.getByRole("button", { name: "Sign in" }).click();
  for (const p of [a, b]) await p.getByRole("navigation", { name: "Rooms" }).waitFor();
});

const roomEntry = (p) => p.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: /^Launch plan/ });
const messages = (p) => p.getByRole("list", { name: "Messages" });
const composer = (p) => p.getByRole("textbox", { name: "Message", exact: true });
const send = async (p, text) => {
  await composer(p).fill(text);
  await composer(p).press("Enter");
};

await step("one sends, the other sees it live", async () => {
  await roomEntry(a).click();
  await roomEntry(b).click();
  await messages(b).waitFor();
  const started = Date.now();
  await send(a, "Good morning, Ben");
  await messages(b).getByText("Good morning, Ben").waitFor();
  console.log(`      post → rendered in the other browser: ${Date.now() - started} ms`);
  assert.equal(await composer(a).inputValue(), "", "the composer is cleared");
  await axe(b, "room");
});

await step("Shift+Enter is a new line; an IME composition's Enter does not send", async () => {
  const box = composer(a);
  await box.fill("first line");
  await box.press("Shift+Enter");
  await box.pressSequentially("second line");
  assert.equal(await box.inputValue(), "first line\nsecond line");
  await box.fill("");
  // A Japanese conversion: compositionstart, text, Enter (isComposing), compositionend.
  await box.focus();
  await box.evaluate((element) => {
    element.dispatchEvent(new CompositionEvent("compositionstart", { bubbles: true, data: "" }));
    element.value = "にほんご";
    element.dispatchEvent(new InputEvent("input", { bubbles: true, data: "にほんご", isComposing: true }));
    element.dispatchEvent(
      new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true, isComposing: true, keyCode: 229 }),
    );
    element.dispatchEvent(new CompositionEvent("compositionend", { bubbles: true, data: "日本語" }));
  });
  await a.waitForTimeout(300);
  assert.equal(await box.inputValue(), "にほんご", "the composition's Enter did not send");
  assert.equal(await messages(b).getByText("にほんご").count(), 0);
  await box.fill("日本語で送信します");
  await a.waitForTimeout(50);
  await box.press("Enter");
  await messages(b).getByText("日本語で送信します").waitFor();
});

await step("hostile bodies render as text", async () => {
  const hostile = `<img src=x onerror="alert(1)"><script>alert(2)</script>[info][title]<b>t</b>[/title]javascript:alert(3)[/info]`;
  await send(a, hostile);
  await messages(b).getByText('<img src=x onerror="alert(1)"><script>alert(2)</script>').waitFor();
  assert.equal(await messages(b).locator("img").count(), 0);
  assert.equal(await messages(b).locator("script").count(), 0);
  assert.equal(await messages(b).locator("b").count(), 0);
  assert.equal(await messages(b).locator(".info-title").last().textContent(), "<b>t</b>");
  assert.equal(await messages(b).locator('a[href^="javascript"]').count(), 0);
});

await step("a mention of me is highlighted; the unread badge moves", async () => {
  await send(a, `[To:${ben.id}] Ben, can you review?`);
  const mention = messages(b).locator("li.message.mentioned", { hasText: "can you review?" });
  await mention.waitFor();
  // Ben looks at his own chat; Aya writes again: Ben's room entry shows it unread.
  await b.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: /^Ben Ito/ }).click();
  await send(a, "One more thing");
  await b.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: /^Launch plan.*1 unread/ }).waitFor();
  await b.waitForFunction(() => document.title.startsWith("(1)"));
  await roomEntry(b).click();
  await messages(b).getByRole("separator").waitFor();
  await b.getByRole("navigation", { name: "Rooms" }).getByRole("button", { name: /^Launch plan$/ }).waitFor();
  await b.screenshot({ path: join(screenshots, "room.png") });
});

await step("edit and delete are seen live", async () => {
  const id = await messages(a).locator("li.message", { hasText: "One more thing" }).getAttribute("data-message-id");
  const mine = messages(a).locator(`li[data-message-id="${id}"]`);
  await mine.hover();
  await mine.getByRole("button", { name: "Edit" }).click();
  await mine.getByRole("textbox", { name: "Edit" }).fill("One more thing (edited)");
  await mine.getByRole("button", { name: "Save" }).click();
  await messages(b).getByText("One more thing (edited)").waitFor();
  await mine.locator(".edited").waitFor();
  await mine.hover();
  await mine.getByRole("button", { name: "Delete" }).click();
  await messages(b).getByText("One more thing (edited)").waitFor({ state: "detached" });
});

await step("a server restart shows 'Reconnecting…' and resumes without loss", async () => {
  await stopServer();
  await b.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor();
  await startServer();
  const sent = await api("POST", `/v2/rooms/${roomAnswer.body.room_id}/messages`, { body: "Sent while you were away" }, aya.token);
  assert.equal(sent.status, 200);
  await messages(b).getByText("Sent while you were away").waitFor({ timeout: 40_000 });
  await b.getByRole("status").filter({ hasText: "Reconnecting…" }).waitFor({ state: "detached" });
});

await step("Japanese when chosen", async () => {
  await b.getByLabel("Language").selectOption("ja");
  await b.getByRole("navigation", { name: "チャット一覧" }).waitFor();
  await b.getByRole("button", { name: "送信" }).waitFor();
  await b.getByLabel("言語").selectOption("en");
});

await step("sign out ends the session", async () => {
  await b.getByRole("button", { name: "Sign out", exact: true }).click();
  await b.getByRole("button", { name: "Sign in" }).waitFor();
  await b.reload();
  await b.getByRole("button", { name: "Sign in" }).waitFor();
});

await browser.close();
await stopServer();
rmSync(dataDir, { recursive: true, force: true });
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("web client: every browser check passed");
