-- foobar.com schema, migration 0001: the items table. Applied once, in order, by the mysql role
-- (state mysql.schema), and recorded in the table schema_migrations; never edit it once applied.
CREATE TABLE IF NOT EXISTS items (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  description TEXT NULL,
  served_by VARCHAR(64) NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY items_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
