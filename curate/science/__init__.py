"""The science: pure functions over numpy arrays (and pandas tables of them).

PIE marking and scoring (:mod:`.pies`), per-class impact statistics (:mod:`.stats`), flag categories
(:mod:`.flags`), cross-fitting (:mod:`.crossfit`), probe images (:mod:`.probes`), pixel-quality
severities (:mod:`.quality`), the run's tables (:mod:`.analysis`, :mod:`.findings`) and review
decisions (:mod:`.review`). Nothing here imports torch or FiftyOne, or reads or writes a file
(tests/test_architecture.py checks it), so every rule is testable with hand-made arrays.
"""
