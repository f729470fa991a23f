-- Containers: one row each.  The Docker-shaped Config/HostConfig are stored as JSON because they
-- are read whole (inspect) and never queried by field; everything that changes while a container
-- runs (state, pid, exit code, health) has its own column so the monitor updates it without
-- parsing JSON and `ps` filters it in SQL.
CREATE TABLE containers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    image_id        TEXT NOT NULL,
    image_name      TEXT NOT NULL,
    created         REAL NOT NULL,
    config          TEXT NOT NULL,
    host_config     TEXT NOT NULL,
    -- engine-private settings: runtime, log driver options, network mode, mounts, rootfs paths
    settings        TEXT NOT NULL,
    network_settings TEXT NOT NULL DEFAULT '{}',
    status          TEXT NOT NULL DEFAULT 'created',
    pid             INTEGER NOT NULL DEFAULT 0,
    -- start time of pid in clock ticks since boot (/proc/PID/stat field 22): tells a live
    -- container from a recycled pid after a crash or reboot
    pid_start       INTEGER NOT NULL DEFAULT 0,
    monitor_pid     INTEGER NOT NULL DEFAULT 0,
    exit_code       INTEGER NOT NULL DEFAULT 0,
    error           TEXT NOT NULL DEFAULT '',
    oom_killed      INTEGER NOT NULL DEFAULT 0,
    started_at      REAL NOT NULL DEFAULT 0,
    finished_at     REAL NOT NULL DEFAULT 0,
    restart_count   INTEGER NOT NULL DEFAULT 0,
    -- set by stop/kill from the user: restart policies must not revive the container
    stopped_by_user INTEGER NOT NULL DEFAULT 0,
    health_status   TEXT NOT NULL DEFAULT '',
    failing_streak  INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX containers_image ON containers(image_id);

-- The last results of a container's health check (Docker keeps 5).
CREATE TABLE container_health_log (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    start        REAL NOT NULL,
    end          REAL NOT NULL,
    exit_code    INTEGER NOT NULL,
    output       TEXT NOT NULL
);

CREATE INDEX container_health_log_id ON container_health_log(container_id, start);
