-- Networks a container was connected to with `network connect`, beyond its --network: they are
-- part of its configuration, so it rejoins them at every start (and a stopped container can be
-- connected, taking effect at its next start), as in Docker.
CREATE TABLE container_networks (
    container_id TEXT NOT NULL,
    network_id   TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    aliases      TEXT NOT NULL DEFAULT '[]',
    ip_address   TEXT,
    PRIMARY KEY (container_id, network_id)
);
