"""Data sources and identities: content hash, URIs, source policy, HTTP source, pointer files."""
