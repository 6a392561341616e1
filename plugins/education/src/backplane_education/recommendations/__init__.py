"""Recommendations that learn, per tenant, from the plugin's own tables: the next course a
learner will take (:mod:`.next_course`) and the learners at risk of not completing
(:mod:`.at_risk`), trained through the kernel's trainer hook, served through ``kernel.models``
(:mod:`.routes`); :mod:`.school` seeds a synthetic school with real structure to learn from."""
