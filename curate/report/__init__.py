"""The HTML report of a run (:mod:`.html`) and its rendering in headless Chromium (:mod:`.browser`)."""
