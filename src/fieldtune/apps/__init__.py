"""Applications built on fieldtune's public API."""
