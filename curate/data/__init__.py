"""Data in and out: sources of labelled images, decoding, pixel measurement, the run directory, and
the rules that keep a user's files safe (:mod:`.safety`, :mod:`.faults`)."""
