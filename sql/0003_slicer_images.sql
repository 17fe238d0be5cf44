-- 0003_slicer_images.sql: images uploaded through the MONAI Label protocol (3D Slicer).
-- The module refers to an uploaded volume only by the name it chose (PUT /datastore/?image=NAME)
-- and later asks to segment that name; the file itself is a content-addressed blob.
CREATE TABLE slicer_images (
    name        text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 1000),
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    path        text        NOT NULL CHECK (length(path) > 0),
    size        bigint      NOT NULL CHECK (size >= 0),
    ext         text        NOT NULL CHECK (ext IN ('.nii', '.nii.gz')),
    filename    text        NOT NULL DEFAULT '' CHECK (length(filename) <= 1000),
    client_id   text        CHECK (length(client_id) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE slicer_images IS
    'Volumes uploaded by MONAI Label clients (3D Slicer) under the name the client chose: the '
    'blob (path, SHA-256, size), its NIfTI extension and the file name the client sent.';
