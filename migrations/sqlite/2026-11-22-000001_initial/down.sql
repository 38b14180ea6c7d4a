DROP TABLE used_oidc_states;
DROP TABLE signing_keys;
DROP TABLE clients;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE external_identities;
DROP TABLE users;
