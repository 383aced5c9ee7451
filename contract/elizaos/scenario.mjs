// The client scenario with the official ElizaOS api-client, unchanged. Its SessionsService
// covers create, get, send, list messages, list, health and delete; renew, heartbeat, PATCH
// timeout and agent registration have no method there, so they go through the same client's
// request helper (the path an ElizaOS frontend would add for them).
import { ElizaClient, ApiError } from "@elizaos/api-client";
import { randomUUID } from "node:crypto";

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const client = ElizaClient.create({ baseUrl: process.env.BASE_URL });
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
const { sessionId } = created;

const info = await sessions.getSession(sessionId);
check(info.sessionId === sessionId && info.lastActivity, "getSession");

const first = await sessions.sendMessage(sessionId, { content: "hello" });
check(first.userMessage?.content === "hello" && first.userMessage.authorId === userId, `sendMessage: ${JSON.stringify(first)}`);
check(first.sessionStatus && typeof first.sessionStatus.wasRenewed === "boolean", "sessionStatus");
await sessions.sendMessage(sessionId, { content: "how are you?", metadata: { source: "test" } });

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
