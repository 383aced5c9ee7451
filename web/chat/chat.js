// The reference web chat page of agent-sessions: plain JavaScript, no build step, no
// dependencies. It never holds a full API key: it creates its session with a publishable key
// (scope `sessions:create` only, bound to one agent) or, in the open loopback mode, with none,
// and from then on uses only the session's own token.
//
// Configuration: `/chat?agentId=<id>&key=<publishable key>`, or `/chat/config.json` served by
// the operator (AGENT_SESSIONS_CHAT_AGENT_ID, AGENT_SESSIONS_CHAT_KEY).
"use strict";

(() => {
  const API = "/api/messaging/sessions";
  const USER_KEY = "agent-sessions:user";
  const PAGE = 30;

  const $ = (id) => document.getElementById(id);
  const ui = {
    title: $("chat-title"),
    connection: $("connection"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    keepChatting: $("keep-chatting"),
    newChat: $("new-chat"),
    history: document.querySelector(".history"),
    loadEarlier: $("load-earlier"),
    messages: $("messages"),
    notice: $("notice"),
    announcer: $("announcer"),
    composer: $("composer"),
    input: $("message"),
    send: $("send"),
  };

  const state = {
    config: null,
    userId: null,
    session: null, // {id, token, cursor}
    stream: null,
    ended: false,
    paused: false,
    before: null, // the `before` cursor of the next older page
    oldestShown: null, // createdAt (ms) of the oldest message shown
    expiresAt: null, // ms, server clock
    serverOffset: 0, // server clock minus ours, in ms
    warningMs: 0,
    countdown: null,
    slowUntil: 0,
    slowTimer: null,
    retryDelay: 0, // ms before the next look at a stream or session that failed; 0: none yet
    sending: false,
    draftKey: null, // the Idempotency-Key of the text being typed: a resend never doubles it
    seen: new Set(),
  };

  // ---------------------------------------------------------------------------------------
  // Storage that survives a browser refusing it (private modes): then the page just forgets.

  const store = {
    get(key) {
      try {
        return JSON.parse(localStorage.getItem(key));
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        localStorage.setItem(key, JSON.stringify(value));
      } catch {
        /* not kept */
      }
    },
    remove(key) {
      try {
        localStorage.removeItem(key);
      } catch {
        /* nothing kept */
      }
    },
  };

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  const sessionKey = () => `agent-sessions:chat:${state.config.agentId}`;
  const saveSession = () => state.session && store.set(sessionKey(), state.session);

  // ---------------------------------------------------------------------------------------
  // The API.

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super(body?.message || (status ? `HTTP ${status}` : "network error"));
      this.status = status; // 0: no answer (offline, server down)
      this.code = body?.code;
      this.details = body?.details;
      this.retryAfter = retryAfter;
    }
  }

  async function call(method, path, { body, token, idempotencyKey } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, null, null);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      /* an empty or non-JSON body */
    }
    if (!response.ok) {
      throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    }
    return data;
  }

  const sessionPath = (suffix = "") => `${API}/${state.session.id}${suffix}`;
  const asUser = (extra = {}) => ({ token: state.session.token, ...extra });

  // ---------------------------------------------------------------------------------------
  // What the page shows.

  function setConnection(kind, text) {
    ui.connection.dataset.state = kind;
    ui.connection.textContent = text;
  }

  /// Says `text` once to screen readers (the visible texts may tick every second).
  function announce(text) {
    ui.announcer.textContent = text;
  }

  function showNotice(text, { speak = true } = {}) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
    if (text && speak) announce(text);
  }

  function setComposer(enabled) {
    const usable = enabled && !!state.session && !state.ended;
    const slow = Date.now() < state.slowUntil;
    ui.input.disabled = !usable;
    ui.send.disabled = !usable || slow || state.sending;
  }

  /// The wait before looking again at something that failed: 2 s, doubling up to a minute,
  /// with jitter (many pages must not come back in step); `Retry-After` when the server said.
  function backoff(error) {
    const told = parseInt(error?.retryAfter, 10);
    state.retryDelay = Math.min(60000, state.retryDelay ? state.retryDelay * 2 : 2000);
    const wait = Number.isFinite(told) && told > 0 ? told * 1000 : state.retryDelay;
    return wait * (0.8 + Math.random() * 0.4);
  }

  function showBanner(kind, text, { keep = false, restart = false } = {}) {
    ui.banner.dataset.kind = kind;
    ui.bannerText.textContent = text;
    ui.keepChatting.hidden = !keep;
    ui.newChat.hidden = !restart;
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
    ui.banner.dataset.kind = "";
  }

  const authorOf = (m) => (m.isAgent ? "agent" : m.authorId === state.userId ? "user" : "other");

  /// Adds a message where its `createdAt` puts it (once: the stream and the history overlap).
  function render(message) {
    if (!message || state.seen.has(message.id)) return;
    state.seen.add(message.id);
    const at = Date.parse(message.createdAt);
    const item = document.createElement("li");
    item.className = "message";
    item.dataset.id = message.id;
    item.dataset.author = authorOf(message);
    item.dataset.createdAt = String(at);
    const who = document.createElement("span");
    who.className = "visually-hidden";
    who.textContent = item.dataset.author === "agent" ? "Agent: " : item.dataset.author === "user" ? "You: " : "Participant: ";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.content;
    const time = document.createElement("time");
    time.dateTime = message.createdAt;
    time.textContent = new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    item.append(who, text, time);

    const later = Array.from(ui.messages.children).find((li) => Number(li.dataset.createdAt) > at);
    const nearBottom = ui.history.scrollHeight - ui.history.scrollTop - ui.history.clientHeight < 80;
    ui.messages.insertBefore(item, later || null);
    if (state.oldestShown === null || at < state.oldestShown) state.oldestShown = at;
    if (!later && nearBottom) ui.history.scrollTop = ui.history.scrollHeight;
  }

  function clearConversation() {
    ui.messages.replaceChildren();
    state.seen.clear();
    state.oldestShown = null;
    state.before = null;
    ui.loadEarlier.hidden = true;
    hideBanner();
    showNotice("");
  }

  // ---------------------------------------------------------------------------------------
  // Expiry: the countdown follows the server's clock, measured from its answers.

  function noteSession(session) {
    state.serverOffset = Date.parse(session.expiresAt) - session.timeRemaining - Date.now();
    state.expiresAt = Date.parse(session.expiresAt);
    state.warningMs = (session.timeoutConfig?.warningThresholdMinutes ?? 5) * 60000;
    state.paused = session.status === "paused";
    if (session.title) ui.title.textContent = session.title;
    if (session.isNearExpiration) startCountdown();
    else if (ui.banner.dataset.kind === "expiring") stopCountdown();
  }

  const remaining = () => state.expiresAt - (Date.now() + state.serverOffset);

  function startCountdown() {
    const wasShown = ui.banner.dataset.kind === "expiring";
    stopCountdown();
    if (!wasShown) {
      const minutes = Math.max(1, Math.round(remaining() / 60000));
      announce(`This chat will end in about ${minutes} minute${minutes === 1 ? "" : "s"} unless you keep chatting.`);
    }
    const tick = () => {
      const left = Math.max(0, remaining());
      if (left === 0) {
        showBanner("expiring", "This chat is ending…");
        announce("This chat is ending.");
        stopCountdown();
        checkSession();
        return;
      }
      const minutes = Math.floor(left / 60000);
      const seconds = String(Math.floor((left % 60000) / 1000)).padStart(2, "0");
      showBanner("expiring", `This chat will end in ${minutes}:${seconds} unless you keep chatting.`, {
        keep: true,
      });
    };
    tick();
    state.countdown = setInterval(tick, 1000);
  }

  function stopCountdown() {
    if (state.countdown) clearInterval(state.countdown);
    state.countdown = null;
    if (ui.banner.dataset.kind === "expiring") hideBanner();
  }

  async function keepChatting() {
    ui.keepChatting.disabled = true;
    try {
      const session = await call("POST", sessionPath("/renew"), asUser());
      noteSession(session);
      if (!session.isNearExpiration) stopCountdown();
      showNotice("");
    } catch (e) {
      if (e.code === "SESSION_RENEWAL_FAILED") {
        showBanner("expiring", "This chat has reached its maximum length and will end soon.");
        ui.keepChatting.hidden = true;
      } else {
        handleError(e);
      }
    } finally {
      ui.keepChatting.disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // The end of a chat.

  const ENDINGS = {
    SESSION_EXPIRED: "This chat has expired.",
    SESSION_ENDED: "This chat has ended.",
  };

  function endChat(text) {
    if (state.ended) return;
    state.ended = true;
    stopCountdown();
    if (state.stream) state.stream.close();
    state.stream = null;
    setComposer(false);
    setConnection("ended", "Chat ended");
    showBanner("ended", text, { restart: true });
    announce(text);
    ui.newChat.focus();
  }

  async function startNewChat() {
    if (state.config) store.remove(sessionKey());
    if (state.stream) state.stream.close();
    Object.assign(state, {
      stream: null,
      session: null,
      ended: false,
      paused: false,
      slowUntil: 0,
      retryDelay: 0,
      draftKey: null,
    });
    clearInterval(state.slowTimer);
    ui.title.textContent = "Chat";
    clearConversation();
    setComposer(false);
    await createSession();
  }

  // ---------------------------------------------------------------------------------------
  // Errors the user can act on.

  function slowDown(seconds) {
    state.slowUntil = Date.now() + seconds * 1000;
    clearInterval(state.slowTimer);
    let first = true;
    const tick = () => {
      const left = Math.ceil((state.slowUntil - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(state.slowTimer);
        showNotice("");
        setComposer(!state.paused);
        return;
      }
      showNotice(`You're sending messages too quickly. Please slow down and try again in ${left} s.`, {
        speak: first,
      });
      first = false;
      setComposer(!state.paused);
    };
    tick();
    state.slowTimer = setInterval(tick, 1000);
  }

  function handleError(e) {
    if (e.status === 429) {
      slowDown(Math.max(1, parseInt(e.retryAfter, 10) || 1));
    } else if (e.status === 410) {
      endChat(ENDINGS[e.code] || "This chat has ended.");
    } else if (e.status === 409 && e.code === "SESSION_PAUSED") {
      showNotice("This chat is paused; messages can be sent again once it resumes.");
    } else if (e.status === 401 || e.status === 404) {
      endChat("This chat is no longer available.");
    } else if (e.status === 0) {
      setConnection("offline", "Offline");
      showNotice("You appear to be offline. Press Send again when you are back online (it is never sent twice).");
    } else {
      showNotice(e.message || "Something went wrong; please try again.");
    }
  }

  // ---------------------------------------------------------------------------------------
  // The session: created once, found again after a reload.

  function ready(session) {
    document.body.dataset.sessionId = session.sessionId;
    noteSession(session);
    state.ended = false;
    setComposer(!state.paused);
    showNotice(state.paused ? "This chat is paused." : "");
  }

  async function createSession() {
    setConnection("connecting", "Starting…");
    try {
      const session = await call("POST", API, {
        token: state.config.key || undefined,
        body: { agentId: state.config.agentId, userId: state.userId, metadata: { channel: "web-chat" } },
      });
      state.session = { id: session.sessionId, token: session.sessionToken, cursor: 0 };
      saveSession();
      ready(session);
      openStream();
      ui.input.focus();
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        setConnection("offline", "Not available");
        showNotice("This chat cannot start: its link needs a valid publishable key for this agent.");
      } else if (e.status === 404) {
        setConnection("offline", "Not available");
        showNotice("This chat cannot start: the agent is not registered.");
      } else if (e.status === 0 || e.status === 429 || e.status >= 500) {
        // Not the page's fault: try again, as the server asks or with a growing pause.
        setConnection(e.status === 0 ? "offline" : "reconnecting", e.status === 0 ? "Offline" : "Starting…");
        showNotice(e.status === 429 ? "Many chats are starting right now; trying again shortly…" : "Cannot reach the chat service; retrying…");
        setTimeout(createSession, backoff(e));
      } else {
        showNotice(e.message || "This chat cannot start.");
      }
    }
  }

  /// A stored session: true when the page could show it (live, or as an ended transcript).
  async function resume(saved) {
    state.session = saved;
    try {
      const session = await call("GET", sessionPath(), asUser());
      ready(session);
      await loadPage();
      openStream();
      return true;
    } catch (e) {
      if (e.status === 410) {
        await showTranscript();
        endChat(ENDINGS[e.code] || "This chat has ended.");
        return true;
      }
      if (e.status === 401 || e.status === 404) {
        // Gone (purged, deleted) or its token revoked: start afresh.
        store.remove(sessionKey());
        state.session = null;
        return false;
      }
      // No answer, rate limited, the server failing: the chat is still there; keep it.
      setConnection(e.status === 0 ? "offline" : "reconnecting", e.status === 0 ? "Offline" : "Reconnecting…");
      showNotice("Cannot reach the chat service; retrying…");
      setTimeout(async () => {
        if (!(await resume(saved))) await createSession();
      }, backoff(e));
      return true;
    }
  }

  /// The conversation of a session that is over (until the server purges it).
  async function showTranscript() {
    try {
      const page = await call("GET", sessionPath(`/transcript?limit=${PAGE}`), asUser());
      page.messages.forEach(render);
    } catch {
      /* the banner says it ended; the history is a bonus */
    }
  }

  /// One page of history, older than what is shown (the newest page first).
  async function loadPage() {
    const before = state.before ? `&before=${state.before}` : "";
    const top = ui.history.scrollHeight - ui.history.scrollTop;
    const page = await call("GET", sessionPath(`/messages?limit=${PAGE}${before}`), asUser());
    page.messages.forEach(render);
    state.before = page.cursors.before;
    ui.loadEarlier.hidden = !page.hasMore;
    if (before) ui.history.scrollTop = ui.history.scrollHeight - top;
    else ui.history.scrollTop = ui.history.scrollHeight;
  }

  /// Why the stream stopped, and what to do: reopen it (after a pause), resync a cursor whose
  /// events were purged, or end the chat.
  async function checkSession() {
    if (!state.session || state.ended || state.stream) return;
    try {
      const session = await call("GET", sessionPath(), asUser());
      noteSession(session);
      // A cursor older than the events kept (away for longer than the retention window):
      // read from the start of what is kept; the history already shown stays.
      await call("GET", sessionPath(`/watch?cursor=${state.session.cursor || 0}&timeout=0&limit=1`), asUser());
      openStream();
    } catch (e) {
      if (e.code === "CURSOR_EXPIRED") {
        state.session.cursor = 0;
        saveSession();
        openStream();
      } else if (e.status === 410 || e.status === 401 || e.status === 404) {
        handleError(e);
      } else {
        if (e.code === "TOO_MANY_STREAMS") {
          showNotice("This chat is open in too many windows; close one to see new messages here.");
        }
        setTimeout(checkSession, backoff(e));
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // Live: the session's event stream, resumed from the last cursor seen.

  function openStream() {
    if (state.stream || state.ended) return;
    const { id, token, cursor } = state.session;
    const url = `${API}/${id}/events?access_token=${encodeURIComponent(token)}` + (cursor ? `&cursor=${cursor}` : "");
    const stream = new EventSource(url);
    state.stream = stream;
    stream.onopen = () => {
      state.retryDelay = 0;
      setConnection("live", "Connected");
    };
    stream.onerror = () => {
      if (stream.readyState === EventSource.CLOSED) {
        // Refused (the session is gone or over, too many streams, the server failing) or
        // ended (204 after its last event): find out which, without hammering the server.
        state.stream = null;
        if (!state.ended) {
          setConnection("reconnecting", "Reconnecting…");
          setTimeout(checkSession, backoff());
        }
      } else {
        setConnection(navigator.onLine ? "reconnecting" : "offline", navigator.onLine ? "Reconnecting…" : "Offline");
      }
    };
    const on = (type, handle) =>
      stream.addEventListener(type, (e) => {
        const event = JSON.parse(e.data);
        state.session.cursor = event.cursor;
        saveSession();
        handle(event.data, event);
      });
    on("message.created", (message) => {
      // A message older than the history shown comes with "Load earlier messages" instead.
      if (state.oldestShown !== null && Date.parse(message.createdAt) < state.oldestShown) return;
      render(message);
    });
    on("session.expiring", (data) => {
      state.expiresAt = Date.parse(data.expiresAt);
      if (remaining() > 0) startCountdown();
    });
    on("session.renewed", (data) => {
      state.expiresAt = Date.parse(data.expiresAt);
      if (remaining() > state.warningMs) stopCountdown();
      else if (state.countdown) startCountdown();
    });
    on("session.timeout_updated", (data) => {
      state.expiresAt = Date.parse(data.expiresAt);
      state.warningMs = data.timeoutConfig.warningThresholdMinutes * 60000;
      if (remaining() > state.warningMs) stopCountdown();
    });
    on("session.paused", () => {
      state.paused = true;
      stopCountdown();
      setComposer(false);
      showNotice("This chat is paused.");
    });
    on("session.resumed", (data) => {
      state.paused = false;
      state.expiresAt = Date.parse(data.expiresAt);
      setComposer(!state.ended);
      showNotice("");
    });
    on("session.updated", (data) => {
      ui.title.textContent = data.title || "Chat";
    });
    on("session.expired", () => endChat(ENDINGS.SESSION_EXPIRED));
    on("session.ended", () => endChat(ENDINGS.SESSION_ENDED));
    on("session.closed", () => endChat(ENDINGS.SESSION_ENDED));
  }

  // ---------------------------------------------------------------------------------------
  // Sending.

  async function send(event) {
    event.preventDefault();
    const content = ui.input.value.trim();
    if (!content || !state.session || state.ended || state.sending || Date.now() < state.slowUntil) return;
    state.sending = true;
    state.draftKey = state.draftKey || uuid();
    setComposer(!state.paused);
    try {
      const sent = await call("POST", sessionPath("/messages"), asUser({ body: { content }, idempotencyKey: state.draftKey }));
      render(sent);
      ui.input.value = "";
      state.draftKey = null;
      showNotice("");
      if (!sent.sessionStatus.isNearExpiration) {
        state.expiresAt = Date.parse(sent.sessionStatus.expiresAt);
        stopCountdown();
      }
    } catch (e) {
      handleError(e);
    } finally {
      state.sending = false;
      setComposer(!state.paused);
      if (!state.ended) ui.input.focus();
    }
  }

  // ---------------------------------------------------------------------------------------

  async function loadConfig() {
    const query = new URLSearchParams(location.search);
    if (query.get("agentId")) return { agentId: query.get("agentId"), key: query.get("key") };
    try {
      const served = await fetch("/chat/config.json").then((r) => r.json());
      return { agentId: served.agentId, key: served.key };
    } catch {
      return { agentId: null, key: null };
    }
  }

  async function start() {
    state.config = await loadConfig();
    if (!state.config.agentId) {
      setConnection("offline", "Not configured");
      showNotice("This chat is not configured: open it as /chat?agentId=<agent id>&key=<publishable key>.");
      return;
    }
    state.userId = store.get(USER_KEY) || uuid();
    store.set(USER_KEY, state.userId);
    const saved = store.get(sessionKey());
    if (saved && saved.id && saved.token && (await resume(saved))) return;
    await createSession();
  }

  ui.composer.addEventListener("submit", send);
  ui.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  // Another text is another message: it gets its own Idempotency-Key.
  ui.input.addEventListener("input", () => {
    state.draftKey = null;
  });
  ui.keepChatting.addEventListener("click", keepChatting);
  ui.newChat.addEventListener("click", startNewChat);
  ui.loadEarlier.addEventListener("click", () => loadPage().catch(handleError));
  window.addEventListener("offline", () => setConnection("offline", "Offline"));
  window.addEventListener("online", () => {
    if (state.stream?.readyState === EventSource.OPEN) setConnection("live", "Connected");
    else checkSession();
  });

  start();
})();
