// The web chat page in a real browser against a real server (started by e2e/run.sh with the
// example echo agent answering AGENT_ID's sessions).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run e2e/run.sh)`);
  return value;
};
const BASE = env("BASE_URL");
const ADMIN_KEY = env("ADMIN_KEY");
const AGENT_ID = env("AGENT_ID");
const CHAT_KEY = env("CHAT_KEY");
const SHORT_AGENT_ID = env("SHORT_AGENT_ID");
const SHORT_CHAT_KEY = env("SHORT_CHAT_KEY");
const SCREENSHOTS = env("SCREENSHOTS");
const RESTART_SERVER = env("RESTART_SERVER");

const chatUrl = (agent = AGENT_ID, key = CHAT_KEY) =>
  `${BASE}/chat?agentId=${agent}&key=${encodeURIComponent(key)}`;

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
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
});

after(async () => {
  await browser?.close();
});

/// A fresh browser profile (its own localStorage: a new anonymous user).
async function newPage(viewport = { width: 900, height: 700 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  return page;
}

/// The admin's view of a session, through the API.
async function apiSession(id) {
  const response = await fetch(`${BASE}/api/messaging/sessions/${id}/transcript`, {
    headers: { Authorization: `Bearer ${ADMIN_KEY}` },
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).session;
}

async function openChat(page, url = chatUrl()) {
  await page.goto(url);
  await page.getByLabel("Your message").waitFor();
  await page.waitForFunction(() => !document.getElementById("message").disabled);
  return page.evaluate(() => document.body.dataset.sessionId);
}

async function say(page, text) {
  const input = page.getByLabel("Your message");
  await input.fill(text);
  await input.press("Enter");
  await page.locator('.message[data-author="user"]', { hasText: text }).waitFor();
}

const messageTexts = (page) =>
  page.locator(".message .text").evaluateAll((nodes) => nodes.map((n) => n.textContent));

test("a message gets the agent's reply as soon as it is stored, and a reload brings the conversation back", async () => {
  const page = await newPage();
  const sessionId = await openChat(page);
  assert.match(sessionId, /^[0-9a-f-]{36}$/);
  await page.locator("#connection[data-state=live]").waitFor();

  await say(page, "Hello there");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: Hello there" }).waitFor({ timeout: 10000 });
  await say(page, "How are you?");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: How are you?" }).waitFor({ timeout: 10000 });
  const before = await messageTexts(page);
  assert.deepEqual(before, ["Hello there", "Echo: Hello there", "How are you?", "Echo: How are you?"]);
  await page.screenshot({ path: `${SCREENSHOTS}/chat.png` });

  const cursor = await page.evaluate(
    (agent) => JSON.parse(localStorage.getItem(`agent-sessions:chat:${agent}`)).cursor,
    AGENT_ID,
  );
  assert.ok(cursor >= 5, `the stream's cursor is kept (${cursor})`);
  const streams = [];
  page.on("request", (r) => r.url().includes("/events?") && streams.push(new URL(r.url())));
  await page.reload();
  await page.locator(".message", { hasText: "Echo: How are you?" }).waitFor();
  assert.equal(await page.evaluate(() => document.body.dataset.sessionId), sessionId, "the same session");
  assert.deepEqual(await messageTexts(page), before, "the same history, once each, in order");
  await page.locator("#connection[data-state=live]").waitFor();
  assert.equal(streams.length, 1);
  assert.equal(streams[0].searchParams.get("cursor"), String(cursor), "the stream resumes from the kept cursor");
  assert.match(streams[0].searchParams.get("access_token"), /^ast_/, "with the session's token");

  // Still live after the reload: the stream resumed from its cursor.
  await say(page, "Back again");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: Back again" }).waitFor({ timeout: 10000 });
  assert.equal((await messageTexts(page)).length, 6);
  await page.context().close();
});

test("the page holds a session token, never an API key, and works at phone width", async () => {
  const page = await newPage({ width: 375, height: 740 });
  const requests = [];
  page.on("request", (r) => requests.push({ url: r.url(), auth: r.headers().authorization }));
  const sessionId = await openChat(page);
  await say(page, "From my phone");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: From my phone" }).waitFor({ timeout: 10000 });

  const stored = await page.evaluate(() => JSON.stringify(localStorage));
  assert.ok(!stored.includes(ADMIN_KEY), "no admin key in storage");
  assert.ok(!stored.includes(CHAT_KEY), "the publishable key is not kept either");
  const create = requests.filter((r) => r.url.endsWith("/api/messaging/sessions"));
  assert.equal(create.length, 1);
  assert.equal(create[0].auth, `Bearer ${CHAT_KEY}`, "the create uses the publishable key");
  const afterCreate = requests.filter((r) => r.url.includes(`/sessions/${sessionId}`) && r.auth);
  assert.ok(afterCreate.length > 0);
  for (const r of afterCreate) assert.match(r.auth, /^Bearer ast_/, `${r.url} uses the session token`);

  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at phone width (${overflow}px)`);
  await page.screenshot({ path: `${SCREENSHOTS}/chat-phone.png` });
  await page.context().close();
});

test("without a query string the page uses the served config", async () => {
  const page = await newPage();
  const sessionId = await openChat(page, `${BASE}/chat`);
  const session = await apiSession(sessionId);
  assert.equal(session.agentId, AGENT_ID);
  assert.equal(session.metadata.channel, "web-chat");
  await page.context().close();
});

test("near expiry a banner counts down, and Keep chatting renews the session", async () => {
  const page = await newPage();
  const sessionId = await openChat(page, chatUrl(SHORT_AGENT_ID, SHORT_CHAT_KEY));
  const banner = page.locator("#banner[data-kind=expiring]");
  await banner.waitFor();
  assert.match(await page.locator("#banner-text").textContent(), /will end in [0-5]:[0-5]\d/);
  await page.screenshot({ path: `${SCREENSHOTS}/chat-expiring.png` });
  assert.equal((await apiSession(sessionId)).renewalCount, 0);

  await page.getByRole("button", { name: "Keep chatting" }).click();
  let renewed = 0;
  for (let i = 0; i < 50 && renewed === 0; i++) {
    renewed = (await apiSession(sessionId)).renewalCount;
    if (renewed === 0) await page.waitForTimeout(100);
  }
  assert.equal(renewed, 1, "Keep chatting renewed the session once");
  await page.context().close();
});

test("a chat ended through the API shows the ended state and offers a new chat", async () => {
  const page = await newPage();
  const sessionId = await openChat(page);
  await page.locator("#connection[data-state=live]").waitFor();
  await say(page, "Before the end");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: Before the end" }).waitFor({ timeout: 10000 });
  const response = await fetch(`${BASE}/api/messaging/sessions/${sessionId}/close`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ reason: "resolved" }),
  });
  assert.equal(response.status, 200);

  await page.locator("#banner[data-kind=ended]").waitFor();
  assert.equal(await page.locator("#banner-text").textContent(), "This chat has ended.");
  assert.ok(await page.getByLabel("Your message").isDisabled(), "no more typing");
  await page.screenshot({ path: `${SCREENSHOTS}/chat-ended.png` });

  // Reloaded, it is still ended, and its conversation is still there (the transcript).
  await page.reload();
  await page.locator("#banner[data-kind=ended]").waitFor();
  assert.deepEqual(await messageTexts(page), ["Before the end", "Echo: Before the end"]);

  await page.getByRole("button", { name: "Start a new chat" }).click();
  await page.waitForFunction((old) => document.body.dataset.sessionId !== old, sessionId);
  await page.waitForFunction(() => !document.getElementById("message").disabled);
  assert.ok(await page.locator("#banner").isHidden(), `banner: ${await page.locator("#banner").getAttribute("data-kind")} ${await page.locator("#banner-text").textContent()}`);
  await say(page, "A fresh start");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: A fresh start" }).waitFor({ timeout: 10000 });
  assert.deepEqual(await messageTexts(page), ["A fresh start", "Echo: A fresh start"], "a new, empty chat");
  await page.context().close();
});

test("over the rate limit the page asks politely to slow down", async () => {
  const page = await newPage();
  const sessionId = await openChat(page);
  const token = await page.evaluate(
    (agent) => JSON.parse(localStorage.getItem(`agent-sessions:chat:${agent}`)).token,
    AGENT_ID,
  );
  // Use up the session's quota (30 a minute here) with the page's own token.
  let limited = false;
  for (let i = 0; i < 40 && !limited; i++) {
    const r = await fetch(`${BASE}/api/messaging/sessions/${sessionId}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    limited = r.status === 429;
  }
  assert.ok(limited, "the session's limit was reached");

  const input = page.getByLabel("Your message");
  await input.fill("One more thing");
  await input.press("Enter");
  const notice = page.locator("#notice");
  await notice.waitFor();
  assert.match(await notice.textContent(), /too quickly.*try again in \d+ s/);
  assert.equal(await input.inputValue(), "One more thing", "the text is kept to send again");
  assert.ok(await page.locator("#send").isDisabled(), "sending waits for the Retry-After");
  await page.screenshot({ path: `${SCREENSHOTS}/chat-slow-down.png` });

  // After the Retry-After, the same text goes through.
  await notice.waitFor({ state: "hidden", timeout: 15000 });
  assert.ok(await page.locator("#send").isEnabled());
  await input.press("Enter");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: One more thing" }).waitFor({ timeout: 10000 });
  await page.context().close();
});

test("offline and reconnecting are shown, and the chat carries on afterwards", async () => {
  const page = await newPage();
  await openChat(page);
  await page.locator("#connection[data-state=live]").waitFor();

  await page.context().setOffline(true);
  await page.locator("#connection[data-state=offline]").waitFor();
  const input = page.getByLabel("Your message");
  await input.fill("Are you there?");
  await input.press("Enter");
  await page.locator("#notice", { hasText: "offline" }).waitFor();
  assert.equal(await input.inputValue(), "Are you there?", "nothing is lost");
  await page.screenshot({ path: `${SCREENSHOTS}/chat-offline.png` });

  await page.context().setOffline(false);
  await page.locator("#connection[data-state=live]").waitFor({ timeout: 15000 });
  await input.press("Enter");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: Are you there?" }).waitFor({ timeout: 10000 });
  await page.context().close();
});

test("older history comes page by page with the before cursor", async () => {
  const page = await newPage();
  const sessionId = await openChat(page);
  // 16 messages from the user (through the API) and the agent's 16 replies: 32 in all, more
  // than the page's first page of 30.
  // Each reply awaited before the next message, so that the order is known.
  for (let i = 1; i <= 16; i++) {
    const r = await fetch(`${BASE}/api/messaging/sessions/${sessionId}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ content: `Message ${i}` }),
    });
    assert.equal(r.status, 201, await r.text());
    await page.locator(".message .text", { hasText: new RegExp(`^Echo: Message ${i}$`) }).waitFor({ timeout: 10000 });
  }
  const expected = Array.from({ length: 16 }, (_, i) => [`Message ${i + 1}`, `Echo: Message ${i + 1}`]).flat();
  assert.deepEqual(await messageTexts(page), expected, "live, in order");

  await page.reload();
  await page.locator(".message", { hasText: "Echo: Message 16" }).waitFor();
  assert.deepEqual(await messageTexts(page), expected.slice(2), "the newest page of 30");
  const earlier = page.getByRole("button", { name: "Load earlier messages" });
  await earlier.click();
  await page.waitForFunction(() => document.querySelectorAll(".message").length === 32);
  assert.deepEqual(await messageTexts(page), expected, "the older page in front, in order");
  assert.ok(await earlier.isHidden(), "nothing older left");
  await page.context().close();
});

test("pressing Enter twice sends the message once", async () => {
  const page = await newPage();
  const sessionId = await openChat(page);
  const input = page.getByLabel("Your message");
  await input.fill("Only once");
  await Promise.all([input.press("Enter"), input.press("Enter")]);
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: Only once" }).waitFor({ timeout: 10000 });
  await page.waitForTimeout(300);
  const r = await fetch(`${BASE}/api/messaging/sessions/${sessionId}/messages`, {
    headers: { Authorization: `Bearer ${ADMIN_KEY}` },
  });
  const stored = (await r.json()).messages.map((m) => m.content);
  assert.deepEqual(stored, ["Echo: Only once", "Only once"]);
  await page.context().close();
});

test("a dropped stream shows reconnecting, then resumes where it stopped", async () => {
  const page = await newPage();
  const sessionId = await openChat(page);
  await page.locator("#connection[data-state=live]").waitFor();
  await say(page, "Before the drop");
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: Before the drop" }).waitFor({ timeout: 10000 });
  // Every state the header goes through from now on.
  await page.evaluate(() => {
    window.connectionStates = [];
    const el = document.getElementById("connection");
    new MutationObserver(() => window.connectionStates.push(el.dataset.state)).observe(el, {
      attributes: true,
      attributeFilter: ["data-state"],
    });
  });
  const resumed = [];
  page.on("request", (r) => {
    if (r.url().includes("/events")) resumed.push(r.allHeaders().then((h) => h["last-event-id"] ?? new URL(r.url()).searchParams.get("cursor")));
  });

  // The server stops (its streams end) and starts again on the same database.
  execFileSync("bash", [RESTART_SERVER], { stdio: "inherit" });
  await page.waitForFunction(() => window.connectionStates.includes("reconnecting"), null, { timeout: 10000 });
  await page.screenshot({ path: `${SCREENSHOTS}/chat-reconnecting.png` });
  await page.waitForFunction(() => window.connectionStates.at(-1) === "live", null, { timeout: 20000 });
  const cursors = await Promise.all(resumed);
  assert.ok(cursors.length > 0 && cursors.every((c) => Number(c) >= 3), `the stream resumed from its cursor (${cursors})`);

  // A message stored after the drop comes through the resumed stream, once, in order.
  const r = await fetch(`${BASE}/api/messaging/sessions/${sessionId}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ content: "While you were away" }),
  });
  assert.equal(r.status, 201);
  await page.locator('.message[data-author="agent"]', { hasText: "Echo: While you were away" }).waitFor({ timeout: 15000 });
  assert.deepEqual(await messageTexts(page), [
    "Before the drop",
    "Echo: Before the drop",
    "While you were away",
    "Echo: While you were away",
  ]);
  await page.context().close();
});
