-- foobar.com schema; applied idempotently by the mysql role (as the database admin).
CREATE TABLE IF NOT EXISTS items (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  description TEXT NULL,
  served_by VARCHAR(64) NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY items_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
