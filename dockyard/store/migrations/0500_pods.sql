-- Pods: a group of containers sharing the network, IPC and (by hostname) UTS of one infra
-- container, as in Podman.  Membership is its own table so the containers table stays the
-- containers area's; a member removed with plain `rm` simply drops out of the join.
CREATE TABLE pods (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    created   REAL NOT NULL,
    infra_id  TEXT NOT NULL DEFAULT '',
    -- hostname, labels, shared namespaces, published ports, kube origin
    config    TEXT NOT NULL
);

CREATE TABLE pod_containers (
    container_id TEXT PRIMARY KEY,
    pod_id       TEXT NOT NULL REFERENCES pods(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL
);

CREATE INDEX pod_containers_pod ON pod_containers(pod_id, position);
