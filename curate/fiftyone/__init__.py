"""The FiftyOne layer: the database (:mod:`.db`), writing a run (:mod:`.write`), reading the review back
and exporting it (:mod:`.export`), and installing the App plugin (:mod:`.plugin`)."""
