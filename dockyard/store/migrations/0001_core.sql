-- Small key/value table for store-wide facts (store id, creation time, defaults chosen at first use).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
