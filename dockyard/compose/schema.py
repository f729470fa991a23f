"""The JSON schema (draft 7) a compose file is checked against before it is normalised.

Written for dockyard: it describes the subset of the compose format that ``loader``, ``convert``
and ``project`` understand, in the shapes their code reads (so a value of the wrong type is one
error line naming its path instead of a crash later).  Values are checked after interpolation, so
a number or a boolean may also arrive as a string ("${REPLICAS}").

Keys the compose format defines but dockyard does not run are *allowed* here on purpose: ``convert``
and ``project`` refuse them with a message naming the key ("... is not supported by dockyard
compose") or ignore them with a warning, which says more than "not allowed".  Keys nobody defines
(typos) are refused here.
"""

from __future__ import annotations

from typing import Any

ANY: dict[str, Any] = {}
STRING = {"type": "string"}
STRINGS = {"type": "array", "items": STRING}
STRING_OR_LIST = {"type": ["string", "array"], "items": STRING}
INTEGER_PATTERN = r"^\s*-?[0-9]+\s*$"
INT = {"type": ["integer", "string"], "pattern": INTEGER_PATTERN}  # the pattern only applies to a string
NUMBER = {"type": ["number", "string"]}
BOOL = {"type": ["boolean", "string"]}
SIZE = {"type": ["string", "integer"]}  # "64M" or bytes
EXTENSIONS = {"^x-": ANY}
# environment, labels, build args, driver options: {KEY: value} or ["KEY=value", "KEY"]
LIST_OR_DICT = {
    "type": ["object", "array"],
    "items": STRING,
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
}
EXTRA_HOSTS = {
    "type": ["object", "array"],
    "items": STRING,
    "additionalProperties": STRING_OR_LIST,
}


def _obj(props: dict[str, Any], *, required: tuple[str, ...] = (), extensions: bool = True,
         others: bool = False) -> dict[str, Any]:
    """An object with these keys; ``others`` lets through keys the caller refuses with its own message."""
    d: dict[str, Any] = {"type": "object", "properties": props}
    if extensions:
        d["patternProperties"] = EXTENSIONS
    if not others:
        d["additionalProperties"] = False
    if required:
        d["required"] = list(required)
    return d


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [{"type": "null"}, schema]}


_PORT = {
    "type": ["string", "integer", "object"],
    # target is not required here: the loader says "ports[i]: target is required" itself
    "properties": {"target": SIZE, "published": SIZE, "host_ip": STRING, "protocol": STRING,
                   "mode": STRING, "name": STRING, "app_protocol": STRING},
    "patternProperties": EXTENSIONS,
    "additionalProperties": False,
}

_SERVICE_VOLUME = {
    "type": ["string", "object"],
    "properties": {
        "type": STRING, "source": STRING, "target": STRING, "read_only": BOOL, "consistency": STRING,
        "bind": _obj({"propagation": STRING, "create_host_path": BOOL, "selinux": {"enum": ["z", "Z"]}}),
        "volume": _obj({"nocopy": BOOL, "subpath": STRING}),
        "tmpfs": _obj({"size": SIZE, "mode": NUMBER}),
    },
    # keys beyond these (image, cluster ...) are refused by convert.check_keys with their name
    "patternProperties": EXTENSIONS,
    "required": ["type", "target"],
}

_DEPENDS_ON = {
    "type": ["array", "object"],
    "items": STRING,
    "additionalProperties": _nullable(_obj({
        "condition": {"enum": ["service_started", "service_healthy", "service_completed_successfully"]},
        "required": BOOL,
        "restart": BOOL,
    })),
}

_HEALTHCHECK = _obj({
    "test": STRING_OR_LIST, "interval": STRING, "timeout": STRING, "start_period": STRING,
    "start_interval": STRING, "retries": INT, "disable": BOOL,
})

_RESOURCES = _obj({
    # other limit keys are refused by convert.check_keys, which names them
    "limits": _obj({"cpus": NUMBER, "memory": SIZE, "pids": INT}, others=True),
    "reservations": _obj({"cpus": NUMBER, "memory": SIZE}, others=True),
})

_DEPLOY = _obj({
    "mode": STRING,
    "replicas": INT,
    "resources": _RESOURCES,
    "restart_policy": _obj({"condition": {"enum": ["none", "on-failure", "any"]}, "delay": STRING,
                            "max_attempts": INT, "window": STRING}),
    # Swarm-only: ignored with a warning, whatever they hold
    "update_config": ANY, "rollback_config": ANY, "placement": ANY, "endpoint_mode": ANY, "labels": ANY,
})

_BUILD = {
    "type": ["string", "object"],
    "properties": {
        "context": STRING, "dockerfile": STRING, "dockerfile_inline": STRING, "args": LIST_OR_DICT,
        "target": STRING, "labels": LIST_OR_DICT, "no_cache": BOOL, "pull": BOOL, "network": STRING,
        "extra_hosts": EXTRA_HOSTS, "tags": STRINGS, "platforms": STRINGS,
    },
    # other build keys are refused by the project with their name
}

_SERVICE_NETWORKS = {
    "type": ["array", "object"],
    "items": STRING,
    # other per-network keys (ipv6_address, mac_address ...) are refused by convert with their name
    "additionalProperties": _nullable({
        "type": "object",
        "properties": {"aliases": STRINGS, "ipv4_address": STRING, "priority": INT, "gw_priority": INT},
    }),
}

_ENV_FILE = {
    "type": ["string", "array"],
    "items": {"type": ["string", "object"], "properties": {"path": STRING, "required": BOOL},
              "required": ["path"], "additionalProperties": False},
}

_SERVICE_SECRET = {
    "type": "array",
    "items": {"type": ["string", "object"],
              "properties": {"source": STRING, "target": STRING, "uid": STRING, "gid": STRING, "mode": NUMBER},
              "required": ["source"], "additionalProperties": False},
}

# one schema rather than a oneOf, so that a wrong value gets a precise message, not "not valid under any"
_ULIMITS = {
    "type": "object",
    "additionalProperties": {"type": ["integer", "string", "object"], "pattern": INTEGER_PATTERN,
                             "properties": {"soft": INT, "hard": INT}, "required": ["soft", "hard"],
                             "additionalProperties": False},
}

# what a service may hold and in which shapes; convert.HANDLED is the list of keys dockyard runs
_SERVICE_KEYS: dict[str, Any] = {
    "image": STRING, "build": _BUILD, "command": {"type": ["string", "array", "null"], "items": STRING},
    "entrypoint": {"type": ["string", "array", "null"], "items": STRING},
    "environment": LIST_OR_DICT, "env_file": _ENV_FILE, "labels": LIST_OR_DICT,
    "ports": {"type": "array", "items": _PORT},
    "expose": {"type": "array", "items": {"type": ["string", "integer"]}},
    "volumes": {"type": "array", "items": _SERVICE_VOLUME},
    "volumes_from": STRINGS, "tmpfs": STRING_OR_LIST,
    "networks": _SERVICE_NETWORKS, "network_mode": STRING,
    "hostname": STRING, "container_name": STRING, "user": {"type": ["string", "integer"]}, "working_dir": STRING,
    "read_only": BOOL, "privileged": BOOL, "init": BOOL, "tty": BOOL, "stdin_open": BOOL,
    "stop_signal": STRING, "stop_grace_period": STRING, "restart": STRING,
    "ulimits": _ULIMITS, "security_opt": STRINGS, "cap_add": STRINGS, "cap_drop": STRINGS,
    "healthcheck": _HEALTHCHECK, "logging": _obj({"driver": STRING, "options": {
        "type": ["object", "null"], "additionalProperties": {"type": ["string", "number", "null"]}}}),
    "deploy": _nullable(_DEPLOY), "depends_on": _DEPENDS_ON, "profiles": STRINGS,
    "secrets": _SERVICE_SECRET, "configs": _SERVICE_SECRET,
    "scale": INT, "pull_policy": STRING, "platform": STRING, "runtime": STRING,
    "dns": STRING_OR_LIST, "dns_search": STRING_OR_LIST, "dns_opt": STRINGS, "extra_hosts": EXTRA_HOSTS,
    "mac_address": STRING, "shm_size": SIZE, "pid": {"type": ["string", "null"]}, "ipc": STRING,
    "userns_mode": STRING, "cpus": NUMBER, "cpu_shares": INT, "mem_limit": SIZE, "mem_reservation": SIZE,
    "memswap_limit": SIZE, "pids_limit": INT,
}
# compose keys dockyard does not run: let through so that convert ignores them with a warning
# (develop, links ...) or refuses them with an error naming them (sysctls, devices, extends ...)
_NOT_RUN = (
    "annotations", "attach", "blkio_config", "cgroup", "cgroup_parent", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpuset", "credential_spec", "develop",
    "device_cgroup_rules", "devices", "domainname", "extends", "external_links", "gpus", "group_add",
    "isolation", "label_file", "links", "mem_swappiness", "models", "oom_kill_disable", "oom_score_adj",
    "post_start", "pre_stop", "provider", "pull_refresh_after", "storage_opt", "sysctls", "use_api_socket",
    "uts", "volume_driver",
)
SERVICE = _obj({**_SERVICE_KEYS, **{k: ANY for k in _NOT_RUN}})

_NAME = {"^[a-zA-Z0-9._-]+$": ANY}
_EXTERNAL = {"type": ["boolean", "string", "object"]}

NETWORK = _nullable({
    "type": "object",
    # other keys are refused by the project with their name
    "properties": {
        "name": STRING, "driver": STRING, "driver_opts": LIST_OR_DICT, "external": _EXTERNAL,
        "internal": BOOL, "attachable": BOOL, "enable_ipv6": BOOL, "enable_ipv4": BOOL, "labels": LIST_OR_DICT,
        "ipam": _obj({"driver": STRING, "options": LIST_OR_DICT, "config": {"type": "array", "items": _obj({
            "subnet": STRING, "gateway": STRING, "ip_range": STRING,
            "aux_addresses": {"type": "object", "additionalProperties": STRING}})}}),
    },
})

VOLUME = _nullable(_obj({"name": STRING, "driver": STRING, "driver_opts": LIST_OR_DICT, "external": _EXTERNAL,
                         "labels": LIST_OR_DICT}))

SECRET = _nullable(_obj({"name": STRING, "file": STRING, "environment": STRING, "content": STRING,
                         "external": _EXTERNAL, "labels": LIST_OR_DICT, "driver": STRING,
                         "driver_opts": LIST_OR_DICT, "template_driver": STRING}))


def _named(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["object", "null"], "patternProperties": {k: item for k in _NAME}, "additionalProperties": False}


SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "dockyard compose file",
    **_obj({
        "version": STRING,
        "name": STRING,
        "services": _named(SERVICE),
        "networks": _named(NETWORK),
        "volumes": _named(VOLUME),
        "secrets": _named(SECRET),
        "configs": _named(SECRET),
        # refused by the loader with a message naming them
        "include": ANY,
        "models": ANY,
    }),
}
