// The client scenario through openapi-fetch, typed by openapi-typescript from the committed
// document: `tsc` fails if the scenario no longer fits the schema, `node` fails if the server
// does not behave. The service's calls send the run's API key (API_KEY); the user's calls send
// the session's own token, as a browser would.
import createClient from "openapi-fetch";
import { randomUUID } from "node:crypto";
import type { paths } from "./generated/schema.js";

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

const baseUrl = process.env.BASE_URL;
const apiKey = process.env.API_KEY;
check(baseUrl && apiKey, "BASE_URL and API_KEY must be set");
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });
const agentId = randomUUID();
const userId = randomUUID();

const agent = await client.PUT("/api/agents/{agentId}", {
  params: { path: { agentId } },
  body: { name: "typescript", timeoutConfig: { timeoutMinutes: 60 } },
});
check(agent.response.status === 201, `put agent: ${agent.response.status}`);

const created = await client.POST("/api/messaging/sessions", { body: { agentId, userId } });
check(created.data, `create session: ${JSON.stringify(created.error)}`);
check(created.data.timeoutConfig.timeoutMinutes === 60, "agent timeout inherited");
const sessionId = created.data.sessionId;
const session = { params: { path: { sessionId } } };
const sessionToken = created.data.sessionToken;
check(sessionToken?.startsWith("ast_"), "create returns a session token");

// The user's side, with the session token only: read the session, send as the user.
const user = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${sessionToken}` } });
const mine = await user.GET("/api/messaging/sessions/{sessionId}", session);
check(mine.data?.sessionId === sessionId, `get with the session token: ${JSON.stringify(mine.error)}`);
for (const content of ["hello", "how are you?"]) {
  const sent = await user.POST("/api/messaging/sessions/{sessionId}/messages", { ...session, body: { content } });
  check(
    sent.data?.content === content && !sent.data.isAgent && sent.data.authorId === userId,
    `send with the session token: ${JSON.stringify(sent.error)}`,
  );
}
const listedByUser = await user.GET("/api/messaging/sessions", {});
check(listedByUser.response.status === 403 && listedByUser.error?.code === "FORBIDDEN", "a session token cannot list");
const anonymous = createClient<paths>({ baseUrl });
const noKey = await anonymous.GET("/api/messaging/sessions/{sessionId}", session);
check(noKey.response.status === 401 && noKey.error?.code === "UNAUTHORIZED", "no credentials: 401");
const reply = await client.POST("/api/messaging/sessions/{sessionId}/messages", {
  ...session,
  body: { content: "fine", authorId: agentId },
});
check(reply.data?.isAgent === true, "agent reply");

const page = await client.GET("/api/messaging/sessions/{sessionId}/messages", {
  params: { path: { sessionId }, query: { limit: 2 } },
});
check(page.data, `list: ${JSON.stringify(page.error)}`);
check(page.data.messages.map((m) => m.content).join("|") === "fine|how are you?", "newest first");
check(page.data.hasMore, "has more");
const before = page.data.cursors.before;
check(typeof before === "number", "cursor");
const older = await client.GET("/api/messaging/sessions/{sessionId}/messages", {
  params: { path: { sessionId }, query: { before } },
});
check(older.data?.messages.map((m) => m.content).join("|") === "hello", "older page");

const renewed = await client.POST("/api/messaging/sessions/{sessionId}/renew", session);
check(renewed.data && renewed.data.renewalCount >= 1, `renew: ${JSON.stringify(renewed.error)}`);
const beat = await client.POST("/api/messaging/sessions/{sessionId}/heartbeat", session);
check(beat.data, `heartbeat: ${JSON.stringify(beat.error)}`);
const patched = await client.PATCH("/api/messaging/sessions/{sessionId}/timeout", {
  ...session,
  body: { timeoutMinutes: 90, autoRenew: false },
});
check(patched.data?.timeoutConfig.timeoutMinutes === 90, `patch: ${JSON.stringify(patched.error)}`);

const deleted = await client.DELETE("/api/messaging/sessions/{sessionId}", session);
check(deleted.data?.success === true, "delete");
const gone = await client.GET("/api/messaging/sessions/{sessionId}", session);
check(gone.response.status === 404 && gone.error?.code === "SESSION_NOT_FOUND", "gone after delete");
console.log("typescript client scenario: ok");
