-- apubid store, schema version 6: the version of the source an item was
-- copied from.
-- version: what identified the source file (size, modification time,
-- inode, ETag...) when its copy last started, as xfer.c writes it. It is
-- recorded before the first byte of that copy is written, so a partial
-- file left by an attempt is only ever continued from the same version of
-- the source; NULL (an item from an older apubid) continues nothing.
ALTER TABLE item ADD COLUMN version TEXT;
