-- Networks (Docker's network objects) and their endpoints (one row per container per network).
-- The endpoint row is also the IP allocation: UNIQUE(network_id, ip_address) inside the writer
-- transaction is what keeps two parallel `run`s from ever getting the same address.
CREATE TABLE networks (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    driver      TEXT NOT NULL,
    bridge      TEXT,
    subnet      TEXT,
    gateway     TEXT,
    ip_range    TEXT,
    internal    INTEGER NOT NULL DEFAULT 0,
    dns         INTEGER NOT NULL DEFAULT 0,
    builtin     INTEGER NOT NULL DEFAULT 0,
    auto_subnet INTEGER NOT NULL DEFAULT 0,
    mtu         INTEGER NOT NULL DEFAULT 0,
    labels      TEXT NOT NULL DEFAULT '{}',
    options     TEXT NOT NULL DEFAULT '{}',
    created     REAL NOT NULL
);

CREATE TABLE network_endpoints (
    network_id     TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
    container_id   TEXT NOT NULL,
    container_name TEXT NOT NULL,
    endpoint_id    TEXT NOT NULL,
    ip_address     TEXT NOT NULL,
    requested_ip   TEXT,
    mac_address    TEXT NOT NULL,
    ifname         TEXT NOT NULL,
    host_ifname    TEXT NOT NULL,
    netns_path     TEXT NOT NULL,
    hostname       TEXT,
    aliases        TEXT NOT NULL DEFAULT '[]',
    dns_servers    TEXT NOT NULL DEFAULT '[]',
    created        REAL NOT NULL,
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip_address)
);
CREATE INDEX network_endpoints_container ON network_endpoints(container_id);

-- Published ports, so `port` can answer and a second container cannot take a host port that
-- only exists as a DNAT rule (nothing listens on it, so a bind test alone would not notice).
CREATE TABLE published_ports (
    container_id   TEXT NOT NULL,
    host_ip        TEXT NOT NULL,
    host_port      INTEGER NOT NULL,
    protocol       TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_ip   TEXT NOT NULL,
    PRIMARY KEY (host_ip, host_port, protocol)
);
CREATE INDEX published_ports_container ON published_ports(container_id);
