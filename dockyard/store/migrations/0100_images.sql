-- Images are keyed by their config digest (the image ID, as Docker does).  Content (manifest,
-- config, index, layer blobs) lives in the blob store; these rows only name it.
CREATE TABLE images (
    id                  TEXT PRIMARY KEY,      -- sha256:<config digest>
    manifest_digest     TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    index_digest        TEXT,                  -- the index it was chosen from, when pulled via one
    created             TEXT,                  -- config "created" (RFC 3339) as the image says
    size                INTEGER NOT NULL,      -- sum of the layers' content sizes
    added               REAL NOT NULL,         -- when it entered this store
    last_tag_time       REAL
);

-- One row per name:tag (fully qualified, e.g. docker.io/library/alpine:3).
CREATE TABLE image_tags (
    name     TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    added    REAL NOT NULL
);
CREATE INDEX image_tags_by_image ON image_tags(image_id);

-- RepoDigests: repository@manifest-or-index digest, as registries know the image.
CREATE TABLE image_digests (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    repo     TEXT NOT NULL,
    digest   TEXT NOT NULL,
    PRIMARY KEY (image_id, repo, digest)
);

-- Unpacked layer directories, keyed by diff_id (the uncompressed digest): with overlay a layer's
-- directory holds only its own changes, so one directory serves every image that has the layer.
CREATE TABLE layers (
    diff_id  TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    tar_size INTEGER NOT NULL,
    added    REAL NOT NULL
);

-- The layers of an image, bottom (position 0) to top, with the blob each came from.
CREATE TABLE image_layers (
    image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    diff_id    TEXT NOT NULL REFERENCES layers(diff_id),
    chain_id   TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    blob_size  INTEGER NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_by_diff ON image_layers(diff_id);
CREATE INDEX image_layers_by_blob ON image_layers(blob_digest);
