"""Panel apps: `beamcat serve` and its pages (catalog browser, quick looks)."""
