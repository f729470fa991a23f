-- Volumes of the local driver: content under ROOT/volumes/<name>/_data, options (type/o/device)
-- mounted there with mount(2) while a container uses the volume.
CREATE TABLE volumes (
    name      TEXT PRIMARY KEY,
    driver    TEXT NOT NULL DEFAULT 'local',
    labels    TEXT NOT NULL DEFAULT '{}',
    options   TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0,
    created   REAL NOT NULL
);

-- A container's resolved mounts (anonymous volumes already named), one row per destination: what
-- makes a volume "in use", what --volumes-from copies, and what a restart reuses.
CREATE TABLE container_mounts (
    container_id TEXT NOT NULL,
    destination  TEXT NOT NULL,
    position     INTEGER NOT NULL,
    volume       TEXT,              -- set for volume mounts
    anonymous    INTEGER NOT NULL DEFAULT 0,  -- this container created the volume (rm -v removes it)
    spec         TEXT NOT NULL,     -- MountSpec as JSON
    PRIMARY KEY (container_id, destination)
);
CREATE INDEX container_mounts_volume ON container_mounts(volume);

-- Option volumes currently mounted on their _data, with the started containers using them: the
-- mount goes away when the last of them stops.
CREATE TABLE volume_mounts (
    volume       TEXT NOT NULL,
    container_id TEXT NOT NULL,
    PRIMARY KEY (volume, container_id)
);
