"""The machinery around many runs: the multirun callback (:mod:`.report`), the comparison
of jobs (:mod:`.comparison`) and its figures (:mod:`.figures`)."""
