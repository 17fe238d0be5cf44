-- The two segmentors' disagreement map of an ensemble (mkd) inference: a float32 NIfTI blob on
-- the input grid (the Jensen-Shannon divergence, in bits, of the members' class probabilities
-- at each voxel) and its summary (overall and per-structure means) as JSON.
ALTER TABLE inferences
    ADD COLUMN uncertainty_sha256 text CHECK (uncertainty_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN uncertainty_path   text,
    ADD COLUMN uncertainty        jsonb CHECK (uncertainty IS NULL OR jsonb_typeof(uncertainty) = 'object'),
    ADD CONSTRAINT inferences_uncertainty_blob
        CHECK ((uncertainty_sha256 IS NULL) = (uncertainty_path IS NULL));
COMMENT ON COLUMN inferences.uncertainty IS
    'For a two-member model: {"measure": "js_divergence_bits", "mean", "structures": {name: '
    'mean over the voxels given that class}}; NULL for a single segmentor.';
