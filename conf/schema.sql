-- mod_tokenbay schema (MySQL / MariaDB). Idempotent: safe to load again.
--
-- Keys are never stored: only the SHA-256 of the key (hex), a display prefix
-- and the last four characters. Upstream credentials are stored here because
-- the gateway must send them; restrict access to this database accordingly.
--
-- Allowlists (tb_groups.models, tb_keys.models) are NULL for "everything", or
-- a comma separated list of canonical model ids (aliases resolve first).

CREATE TABLE IF NOT EXISTS tb_groups (
  id          INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name        VARCHAR(64)  NOT NULL,
  status      ENUM('active','disabled') NOT NULL DEFAULT 'active',
  models      TEXT NULL,                        -- optional model allowlist
  created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY uq_tb_groups_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS tb_keys (
  id          INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  key_hash    CHAR(64)     NOT NULL,            -- lower-case hex SHA-256 of the key
  prefix      VARCHAR(16)  NOT NULL,            -- first characters, for display
  last4       CHAR(4)      NOT NULL,            -- last four characters, for display
  name        VARCHAR(128) NOT NULL DEFAULT '',
  group_id    INT UNSIGNED NOT NULL,
  status      ENUM('active','disabled') NOT NULL DEFAULT 'active',
  expires_at  DATETIME NULL,                    -- NULL: never expires
  models      TEXT NULL,                        -- optional model allowlist
  created_at  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY uq_tb_keys_hash (key_hash),
  KEY ix_tb_keys_group (group_id),
  CONSTRAINT fk_tb_keys_group FOREIGN KEY (group_id) REFERENCES tb_groups (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS tb_accounts (
  id              INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name            VARCHAR(64)  NOT NULL,
  protocol        ENUM('openai-chat','openai-responses','anthropic-messages','gemini')
                  NOT NULL DEFAULT 'openai-chat',
  capabilities    VARCHAR(255) NULL,            -- NULL: the protocol's defaults; else a
                                                -- comma separated list of stream_usage,
                                                -- store, compact
  base_url        VARCHAR(512) NOT NULL,        -- e.g. https://api.openai.com/v1
  credential      VARCHAR(2048) NOT NULL DEFAULT '',
  priority        INT          NOT NULL DEFAULT 0,   -- higher tier is tried first
  weight          INT UNSIGNED NOT NULL DEFAULT 1,   -- share inside a tier
  max_concurrency INT UNSIGNED NOT NULL DEFAULT 0,   -- 0: unlimited
  status          ENUM('active','disabled','error') NOT NULL DEFAULT 'active',
                                                -- error: the upstream refused the
                                                -- credential (set by the gateway);
                                                -- cleared by tokenbay-admin account enable
  status_reason   VARCHAR(255) NULL,            -- why, for error
  status_at       TIMESTAMP(6) NULL,            -- when status last changed
  created_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY uq_tb_accounts_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS tb_account_groups (
  account_id  INT UNSIGNED NOT NULL,
  group_id    INT UNSIGNED NOT NULL,
  PRIMARY KEY (account_id, group_id),
  CONSTRAINT fk_tb_ag_account FOREIGN KEY (account_id) REFERENCES tb_accounts (id) ON DELETE CASCADE,
  CONSTRAINT fk_tb_ag_group   FOREIGN KEY (group_id)   REFERENCES tb_groups (id)   ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS tb_models (
  id          VARCHAR(128) NOT NULL PRIMARY KEY, -- canonical id clients see
  owned_by    VARCHAR(64)  NOT NULL DEFAULT 'tokenbay',
  created     BIGINT       NOT NULL DEFAULT 0,   -- unix seconds, shown in /v1/models
  status      ENUM('active','disabled') NOT NULL DEFAULT 'active'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS tb_model_aliases (
  alias       VARCHAR(128) NOT NULL PRIMARY KEY,
  model_id    VARCHAR(128) NOT NULL,
  CONSTRAINT fk_tb_alias_model FOREIGN KEY (model_id) REFERENCES tb_models (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS tb_account_models (
  account_id      INT UNSIGNED NOT NULL,
  model_id        VARCHAR(128) NOT NULL,
  upstream_model  VARCHAR(128) NULL,            -- NULL: same as model_id
  PRIMARY KEY (account_id, model_id),
  CONSTRAINT fk_tb_am_account FOREIGN KEY (account_id) REFERENCES tb_accounts (id) ON DELETE CASCADE,
  CONSTRAINT fk_tb_am_model   FOREIGN KEY (model_id)   REFERENCES tb_models (id)   ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- ---- upgrades of databases created by earlier versions (MySQL and MariaDB) ----

-- tb_accounts.capabilities (the Responses API work)
SET @tb_sql = IF((SELECT COUNT(*) FROM information_schema.COLUMNS
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tb_accounts'
                     AND COLUMN_NAME = 'capabilities') = 0,
                 'ALTER TABLE tb_accounts ADD COLUMN capabilities VARCHAR(255) NULL AFTER protocol',
                 'SELECT 1');
PREPARE tb_stmt FROM @tb_sql;
EXECUTE tb_stmt;
DEALLOCATE PREPARE tb_stmt;

-- tb_accounts.status 'error', status_reason, status_at (scheduling)
ALTER TABLE tb_accounts MODIFY COLUMN status ENUM('active','disabled','error')
  NOT NULL DEFAULT 'active';
SET @tb_sql = IF((SELECT COUNT(*) FROM information_schema.COLUMNS
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tb_accounts'
                     AND COLUMN_NAME = 'status_at') = 0,
                 'ALTER TABLE tb_accounts ADD COLUMN status_reason VARCHAR(255) NULL AFTER status, ADD COLUMN status_at TIMESTAMP(6) NULL AFTER status_reason',
                 'SELECT 1');
PREPARE tb_stmt FROM @tb_sql;
EXECUTE tb_stmt;
DEALLOCATE PREPARE tb_stmt;
