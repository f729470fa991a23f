"""Volumes and mounts: parsing of the mount flags, the local volume driver, copy-up, disk usage."""
