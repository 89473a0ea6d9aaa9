"""Local tooling, apart from the asset graph: ``gh-assets demo/dev``, the embedded Redis and
stand-in processes, and the offline GitHub stand-in itself."""
