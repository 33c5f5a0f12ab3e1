"""Modeling: CLIP backbone, region heads, meta-architecture, losses."""
