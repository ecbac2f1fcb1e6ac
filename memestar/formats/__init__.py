"""The typed, versioned files between the stages: a meme folder (`meme train` writes it), its exports and engines
(`meme export`), and the records they are made of (`records.py`: format, sha256, base fingerprint)."""
