"""Front ends: the command line (:mod:`.cli`), the FiftyOne App operators (:mod:`.app_plugin`), and the
wording they share (:mod:`.summary`). Each is a thin caller of :mod:`curate.api`."""
