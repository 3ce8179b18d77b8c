"""Population training: the batched engine (:mod:`.engine`) and the trainer that drives an ask/tell searcher
with it (:mod:`.trainer`)."""
