"""Capabilities as plain typed functions: ingest, export, import (and later models, crawl, train).

Imports `index/` only. Heavy libraries (torch, open_clip, transformers) are
imported inside the functions that need them, never at import time.
"""
