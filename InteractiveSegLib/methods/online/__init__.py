"""Online learning (dynamic-learning paper): learner, proxy masks, replay, slice proposals, task folder."""
