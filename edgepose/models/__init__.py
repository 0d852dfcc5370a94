"""Model files: manifests, the registry (search path, cache, checksummed fetch),
derived models, and reading TFLite flatbuffers."""
