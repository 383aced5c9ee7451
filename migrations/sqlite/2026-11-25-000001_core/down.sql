DROP TABLE sessions;
DROP TABLE agents;
