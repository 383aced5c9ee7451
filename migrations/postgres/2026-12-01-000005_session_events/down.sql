DROP TABLE expiry_warnings;
DROP TABLE agent_feeds;
DROP TABLE session_events;
