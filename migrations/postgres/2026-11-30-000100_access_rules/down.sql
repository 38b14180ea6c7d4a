DROP INDEX external_identities_user;
-- Linked identities beyond the first of each user cannot be kept.
DELETE FROM external_identities e WHERE EXISTS (
    SELECT 1 FROM external_identities f WHERE f.user_id = e.user_id AND (f.created_at, f.id) < (e.created_at, e.id));
ALTER TABLE external_identities ADD CONSTRAINT external_identities_user_id_key UNIQUE (user_id);

DROP INDEX users_status;
DROP INDEX users_username_lower;
ALTER TABLE users DROP COLUMN last_login_at;
ALTER TABLE users DROP COLUMN status;
