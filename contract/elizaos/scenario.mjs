// The client scenario with the official ElizaOS api-client, unchanged. Its SessionsService
// covers create, get, send, list messages, list, health and delete; renew, heartbeat, PATCH
// timeout and agent registration have no method there, so they go through the same client's
// request helper (the path an ElizaOS frontend would add for them). The client is created with
// the run's API key (`apiKey`, which it sends as `X-API-KEY`); the user's side uses a second
// client carrying the session's own token as `Authorization: Bearer` (its `headers` option).
import { ElizaClient, ApiError } from "@elizaos/api-client";
import { randomUUID } from "node:crypto";

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const baseUrl = process.env.BASE_URL;
const apiKey = process.env.API_KEY;
check(baseUrl && apiKey, "BASE_URL and API_KEY must be set");
const client = ElizaClient.create({ baseUrl, apiKey });
const sessions = client.sessions;
const agentId = randomUUID();
const userId = randomUUID();

const agent = await sessions.put(`/api/agents/${agentId}`, { name: "elizaos", timeoutConfig: { timeoutMinutes: 60 } });
check(agent.agentId === agentId, `register agent: ${JSON.stringify(agent)}`);

const health = await sessions.checkHealth();
check(health.status === "healthy" && typeof health.activeSessions === "number", "health");

const created = await sessions.createSession({ agentId, userId, metadata: { platform: "web", username: "jane" } });
check(created.sessionId && created.agentId === agentId && created.userId === userId, "createSession");
check(created.metadata.platform === "web", "metadata echoed");
const { sessionId, sessionToken } = created;
check(typeof sessionToken === "string" && sessionToken.startsWith("ast_"), "createSession returns a session token");

const info = await sessions.getSession(sessionId);
check(info.sessionId === sessionId && info.lastActivity, "getSession");

// The user's side, with the session token only.
const user = ElizaClient.create({ baseUrl, headers: { Authorization: `Bearer ${sessionToken}` } }).sessions;
const own = await user.getSession(sessionId);
check(own.sessionId === sessionId, "getSession with the session token");
const first = await user.sendMessage(sessionId, { content: "hello" });
check(first.userMessage?.content === "hello" && first.userMessage.authorId === userId, `sendMessage: ${JSON.stringify(first)}`);
check(first.sessionStatus && typeof first.sessionStatus.wasRenewed === "boolean", "sessionStatus");
await user.sendMessage(sessionId, { content: "how are you?", metadata: { source: "test" } });
try {
  await user.listSessions();
  throw new Error("listSessions with a session token should fail");
} catch (e) {
  check(e instanceof ApiError && e.code === "FORBIDDEN" && e.status === 403, `session token lists: ${e}`);
}
try {
  await ElizaClient.create({ baseUrl }).sessions.getSession(sessionId);
  throw new Error("getSession without credentials should fail");
} catch (e) {
  check(e instanceof ApiError && e.code === "UNAUTHORIZED" && e.status === 401, `no credentials: ${e}`);
}

const page = await sessions.getMessages(sessionId, { limit: 1 });
check(page.messages.length === 1 && page.messages[0].content === "how are you?" && page.hasMore, "getMessages");
const older = await sessions.getMessages(sessionId, { before: new Date(page.messages[0].createdAt) });
check(older.messages.map((m) => m.content).join("|") === "hello", `getMessages before: ${JSON.stringify(older)}`);

const listed = await sessions.listSessions();
const mine = listed.sessions.find((s) => s.sessionId === sessionId);
check(mine && listed.total >= 1 && mine.metadata.username === "jane" && mine.lastActivity, "listSessions");

const renewed = await sessions.post(`/api/messaging/sessions/${sessionId}/renew`);
check(renewed.renewalCount >= 1, "renew");
const beat = await sessions.post(`/api/messaging/sessions/${sessionId}/heartbeat`);
check(beat.sessionId === sessionId, "heartbeat");
const patched = await sessions.patch(`/api/messaging/sessions/${sessionId}/timeout`, { timeoutMinutes: 90 });
check(patched.timeoutConfig.timeoutMinutes === 90, "patch timeout");

const deleted = await sessions.deleteSession(sessionId);
check(deleted?.success === true, `deleteSession: ${JSON.stringify(deleted)}`);
try {
  await sessions.getSession(sessionId);
  throw new Error("getSession after delete should fail");
} catch (e) {
  check(e instanceof ApiError && e.code === "SESSION_NOT_FOUND" && e.status === 404, `error shape: ${e}`);
}
console.log("elizaos api-client scenario: ok");
