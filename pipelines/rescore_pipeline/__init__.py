"""rescore-pipeline: SQL pipelines, traffic simulation, training, evaluation, packaging and the
promotion gate of the rescore sidecar's model loop (docs/pipelines.md)."""
